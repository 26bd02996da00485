use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// A connection pool's state at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolFigures {
    pub max: usize,
    pub open: usize,
    pub idle: usize,
    pub waiting: usize,
}

/// One registry per application instance (tests run several in a process).
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
    reads: IntCounterVec,
    outbox_lag: prometheus::Gauge,
    outbox_processed: prometheus::IntCounter,
    alerts: IntGaugeVec,
    webhook_deliveries: IntGaugeVec,
    webhook_attempts: IntCounterVec,
    cds_calls: IntCounterVec,
    cds_cards: IntCounterVec,
    /// Requests per group commit of the writer (its `_count` is the number of commits).
    pub write_group_size: prometheus::Histogram,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by method, route and status"),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by method, route and status",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route", "status"],
        )?;
        let pool = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Database pool connections by pool (primary, replica) and state",
            ),
            &["pool", "state"],
        )?;
        let outbox_lag = prometheus::Gauge::new(
            "outbox_lag_seconds",
            "Age of the oldest unprocessed outbox event (0 when none is pending)",
        )?;
        let outbox_processed = prometheus::IntCounter::new(
            "outbox_events_processed_total",
            "Outbox events this instance's worker processed",
        )?;
        let alerts = IntGaugeVec::new(
            Opts::new("alerts", "Alerts of every organisation by kind and status"),
            &["kind", "status"],
        )?;
        let webhook_deliveries = IntGaugeVec::new(
            Opts::new(
                "webhook_deliveries",
                "Webhook deliveries of every organisation by status",
            ),
            &["status"],
        )?;
        let webhook_attempts = IntCounterVec::new(
            Opts::new(
                "webhook_attempts_total",
                "Webhook delivery attempts this instance made, by outcome (delivered, retry, failed, gone, disabled)",
            ),
            &["outcome"],
        )?;
        // Every outcome has a series from the start (rates of zero, not gaps).
        for outcome in ["delivered", "retry", "failed", "gone", "disabled"] {
            webhook_attempts.with_label_values(&[outcome]);
        }
        let write_group_size = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "write_group_size",
                "Requests (responses and read audit events) written per group commit",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?;
        let reads = IntCounterVec::new(
            Opts::new(
                "db_reads_total",
                "Replica-eligible reads by the pool that served them (primary, replica, primary_fallback)",
            ),
            &["pool"],
        )?;
        let cds_calls = IntCounterVec::new(
            Opts::new("cds_calls_total", "CDS Hooks calls answered, by service"),
            &["service"],
        )?;
        let cds_cards = IntCounterVec::new(
            Opts::new("cds_cards_total", "CDS Hooks cards issued, by indicator"),
            &["indicator"],
        )?;
        for indicator in ["critical", "warning", "info"] {
            cds_cards.with_label_values(&[indicator]);
        }
        registry.register(Box::new(cds_calls.clone()))?;
        registry.register(Box::new(cds_cards.clone()))?;
        registry.register(Box::new(reads.clone()))?;
        registry.register(Box::new(write_group_size.clone()))?;
        registry.register(Box::new(webhook_deliveries.clone()))?;
        registry.register(Box::new(webhook_attempts.clone()))?;
        registry.register(Box::new(outbox_lag.clone()))?;
        registry.register(Box::new(outbox_processed.clone()))?;
        registry.register(Box::new(alerts.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            pool,
            reads,
            outbox_lag,
            outbox_processed,
            alerts,
            webhook_deliveries,
            webhook_attempts,
            write_group_size,
            cds_calls,
            cds_cards,
        })
    }

    /// The counter of outbox events processed, for this instance's outbox workers.
    pub fn outbox_counter(&self) -> prometheus::IntCounter {
        self.outbox_processed.clone()
    }

    /// One CDS Hooks call answered by `service`, with the indicators of its cards.
    pub fn cds_call<'a>(&self, service: &str, indicators: impl Iterator<Item = &'a str>) {
        self.cds_calls.with_label_values(&[service]).inc();
        for indicator in indicators {
            self.cds_cards.with_label_values(&[indicator]).inc();
        }
    }

    pub fn read_served(&self, pool: &str) {
        self.reads.with_label_values(&[pool]).inc();
    }

    /// The counter of webhook delivery attempts by outcome, for the delivery workers.
    pub fn webhook_attempts(&self) -> prometheus::IntCounterVec {
        self.webhook_attempts.clone()
    }

    /// Webhook deliveries by status, read from the database at scrape time.
    pub fn set_deliveries(&self, counts: &[(String, i64)]) {
        self.webhook_deliveries.reset();
        // Every status always has a series (0 when none), so alert rules see zeros, not gaps.
        for status in ["pending", "delivered", "failed"] {
            self.webhook_deliveries.with_label_values(&[status]).set(0);
        }
        for (status, n) in counts {
            self.webhook_deliveries.with_label_values(&[status.as_str()]).set(*n);
        }
    }

    /// The outbox lag and alert counts, read from the database at scrape time.
    pub fn set_background(&self, lag_seconds: f64, alerts: &[(String, String, i64)]) {
        self.outbox_lag.set(lag_seconds);
        self.alerts.reset();
        for kind in ["rupture", "below_cutoff", "deterioration", "item_flag"] {
            for status in ["open", "acknowledged", "resolved", "withdrawn"] {
                self.alerts.with_label_values(&[kind, status]).set(0);
            }
        }
        for (kind, status, n) in alerts {
            self.alerts.with_label_values(&[kind.as_str(), status.as_str()]).set(*n);
        }
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    /// Prometheus text exposition, with the pools' state as read by the caller.
    pub fn render(&self, pools: &[(&str, PoolFigures)]) -> String {
        for (name, figures) in pools {
            for (state, n) in [
                ("max", figures.max),
                ("open", figures.open),
                ("idle", figures.idle),
                ("waiting", figures.waiting),
            ] {
                self.pool.with_label_values(&[name, state]).set(n as i64);
            }
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
