//! Typed settings read once from the environment (and a `.env` file when present).
//! Nothing here is global: `Settings` is passed explicitly, and tests override fields.

use std::time::Duration;

/// The smallest accepted `RAPPORT_JWT_SECRET`, in bytes (HS256 wants a key as long as its hash).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `RAPPORT_BIND`: host:port to listen on.
    pub bind: String,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DATABASE_READ_URL`: a streaming replica for analytics, exports, FHIR searches and
    /// lists (reads by id, writes and token checks stay on `DATABASE_URL`). Optional.
    pub database_read_url: Option<String>,
    /// `RAPPORT_DB_POOL_SIZE`: connections per process.
    pub pool_size: usize,
    /// `RAPPORT_DB_POOL_TIMEOUT_MS`: how long a request waits for a free connection before 503.
    pub pool_timeout: Duration,
    /// `RAPPORT_TOKEN_TTL_SECS`: access-token lifetime.
    pub token_ttl: Duration,
    /// `RAPPORT_JWT_SECRET`: HS256 key; `None` means "generate once, keep in the database".
    pub jwt_secret: Option<String>,
    /// `RAPPORT_JWT_ISSUER` / `RAPPORT_JWT_AUDIENCE`.
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// `RAPPORT_BODY_LIMIT`: JSON bodies (responses, scoring, clients, organisations).
    pub body_limit: usize,
    /// `RAPPORT_LARGE_BODY_LIMIT`: instrument definitions and batches.
    pub large_body_limit: usize,
    /// `RAPPORT_BOOTSTRAP_CLIENT_ID` / `RAPPORT_BOOTSTRAP_CLIENT_SECRET`.
    pub bootstrap_client_id: Option<String>,
    pub bootstrap_client_secret: Option<String>,
    /// `RAPPORT_WORKERS`: HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    /// `RAPPORT_CLIENT_STATUS_TTL_SECS`: how long a process trusts its cached "client not revoked".
    pub client_status_ttl: Duration,
    /// `RAPPORT_EXPECTED_CHECK_SECS`: how often the refit worker looks at the expected-response
    /// models with changes waiting (default 60).
    pub expected_check: Duration,
    /// `RAPPORT_CLIENT_REQUEST_TIMEOUT_MS`: a client must send its request head and body
    /// within this (else 408).
    pub client_request_timeout: Duration,
    /// `RAPPORT_PUBLIC_URL`: the base of every absolute URL rapport writes (FHIR canonicals,
    /// `fullUrl`, `Location`, paging links). Default `http://` + the bound address.
    pub public_url: Option<String>,
    /// `RAPPORT_TRUST_FORWARDED`: take the base from `Forwarded`/`X-Forwarded-*`/`Host`
    /// (only behind a proxy that sets them). Default false: those headers are ignored.
    pub trust_forwarded: bool,
    /// `RAPPORT_WEBHOOK_RETRY_SECS`: the waits before each retry of a failed webhook delivery
    /// (comma-separated seconds, fractions allowed). Default 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    pub webhook_retry: Vec<Duration>,
    /// `RAPPORT_WEBHOOK_ALLOW_PRIVATE`: allow http and private, loopback and link-local webhook
    /// targets (tests and closed networks). Default false.
    pub webhook_allow_private: bool,
    /// `RAPPORT_EVENT_RETENTION_DAYS`: how long announced events are kept for webhook
    /// replays, and processed outbox events at all, default 30.
    pub event_retention: Duration,
    /// `RAPPORT_OUTBOX_WORKERS`: outbox (alert and webhook) worker tasks in this instance,
    /// default 2. 0 leaves the outbox to other instances (a dedicated worker deployment).
    pub outbox_workers: usize,
    /// `RAPPORT_RATE_LIMIT_PER_MINUTE`: requests a minute per client in each instance (burst
    /// the same), default 6000.
    pub rate_limit_per_minute: u32,
    /// `RAPPORT_WRITE_BATCH`: the most single responses one group commit writes (default 256).
    pub write_batch: usize,
    /// `RAPPORT_WRITERS`: group-commit writer tasks, each with a connection of its own
    /// (default 2: one group's statement and WAL flush overlap the next group's).
    pub writers: usize,
    /// `RAPPORT_CITUS`: `auto` (distribute the schema when the database has the citus
    /// extension and an active worker), `require` (wait up to 60 s for both, else refuse to
    /// start) or `off`.
    pub citus: CitusMode,
    /// `RAPPORT_CDS_CORS_ORIGINS`: the browser origins (comma-separated, `https://host[:port]`)
    /// whose CDS clients may call `/cds-services*` from a page. Default none.
    pub cds_cors_origins: Vec<String>,
}

/// What rapport does about Citus at start (`RAPPORT_CITUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CitusMode {
    Auto,
    Require,
    Off,
}

/// The Standard Webhooks retry schedule (seconds before each retry).
pub const DEFAULT_WEBHOOK_RETRY_SECS: [u64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

/// The base of absolute URLs, registered as app data by `startup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBase {
    /// Scheme and authority (and a path prefix, if any), without a trailing slash.
    pub url: String,
    pub trust_forwarded: bool,
}

impl PublicBase {
    /// The base for one request: the configured URL, or with `trust_forwarded` what the
    /// proxy says, when its scheme is http or https (never `javascript:` or the like).
    pub fn for_request(&self, req: &actix_web::HttpRequest) -> String {
        if self.trust_forwarded {
            let info = req.connection_info();
            let scheme = info.scheme().to_ascii_lowercase();
            let host = info.host();
            let plain_host =
                !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
            if (scheme == "http" || scheme == "https") && plain_host {
                return format!("{scheme}://{host}");
            }
        }
        self.url.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {problem}")]
    Invalid { name: &'static str, problem: String },
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: "127.0.0.1:8080".into(),
            database_url: "postgres://postgres@127.0.0.1:5432/rapport".into(),
            database_read_url: None,
            pool_size: 16,
            pool_timeout: Duration::from_millis(5_000),
            token_ttl: Duration::from_secs(3_600),
            jwt_secret: None,
            jwt_issuer: "rapport".into(),
            jwt_audience: "rapport-api".into(),
            body_limit: 64 * 1024,
            large_body_limit: 1024 * 1024,
            bootstrap_client_id: None,
            bootstrap_client_secret: None,
            workers: None,
            client_status_ttl: Duration::from_secs(30),
            expected_check: Duration::from_secs(60),
            client_request_timeout: Duration::from_secs(10),
            public_url: None,
            trust_forwarded: false,
            webhook_retry: DEFAULT_WEBHOOK_RETRY_SECS
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            webhook_allow_private: false,
            cds_cors_origins: Vec::new(),
            event_retention: Duration::from_secs(30 * 24 * 3600),
            outbox_workers: 2,
            rate_limit_per_minute: 6000,
            write_batch: 256,
            writers: 2,
            citus: CitusMode::Auto,
        }
    }
}

impl Settings {
    /// Reads the environment, after loading `.env` when one exists.
    pub fn from_env() -> Result<Settings, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The same as `from_env`, over any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let mut s = Settings::default();
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = non_empty("RAPPORT_BIND") {
            s.bind = v;
        }
        if let Some(v) = non_empty("DATABASE_URL") {
            s.database_url = v;
        }
        s.database_read_url = non_empty("DATABASE_READ_URL");
        if let Some(v) = non_empty("RAPPORT_DB_POOL_SIZE") {
            s.pool_size = parse_positive("RAPPORT_DB_POOL_SIZE", &v)?;
        }
        if let Some(v) = non_empty("RAPPORT_DB_POOL_TIMEOUT_MS") {
            s.pool_timeout = Duration::from_millis(parse_positive("RAPPORT_DB_POOL_TIMEOUT_MS", &v)? as u64);
        }
        if let Some(v) = non_empty("RAPPORT_TOKEN_TTL_SECS") {
            s.token_ttl = Duration::from_secs(parse_positive("RAPPORT_TOKEN_TTL_SECS", &v)? as u64);
        }
        if let Some(v) = non_empty("RAPPORT_CLIENT_REQUEST_TIMEOUT_MS") {
            s.client_request_timeout =
                Duration::from_millis(parse_positive("RAPPORT_CLIENT_REQUEST_TIMEOUT_MS", &v)? as u64);
        }
        if let Some(v) = non_empty("RAPPORT_CLIENT_STATUS_TTL_SECS") {
            let secs: u64 = v.parse().map_err(|_| ConfigError::Invalid {
                name: "RAPPORT_CLIENT_STATUS_TTL_SECS",
                problem: "must be a whole number of seconds".into(),
            })?;
            if secs > 60 {
                return Err(ConfigError::Invalid {
                    name: "RAPPORT_CLIENT_STATUS_TTL_SECS",
                    problem: "must be at most 60 (revoked clients must stop within 60 s)".into(),
                });
            }
            s.client_status_ttl = Duration::from_secs(secs);
        }
        if let Some(v) = non_empty("RAPPORT_EXPECTED_CHECK_SECS") {
            let secs: u64 = v
                .parse()
                .ok()
                .filter(|s| (1..=3_600).contains(s))
                .ok_or_else(|| ConfigError::Invalid {
                    name: "RAPPORT_EXPECTED_CHECK_SECS",
                    problem: "must be a whole number of seconds from 1 to 3600".into(),
                })?;
            s.expected_check = Duration::from_secs(secs);
        }
        if let Some(v) = get("RAPPORT_JWT_SECRET") {
            if v.len() < MIN_JWT_SECRET_BYTES {
                return Err(ConfigError::Invalid {
                    name: "RAPPORT_JWT_SECRET",
                    problem: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
                });
            }
            s.jwt_secret = Some(v);
        }
        if let Some(v) = non_empty("RAPPORT_JWT_ISSUER") {
            s.jwt_issuer = v;
        }
        if let Some(v) = non_empty("RAPPORT_JWT_AUDIENCE") {
            s.jwt_audience = v;
        }
        if let Some(v) = non_empty("RAPPORT_BODY_LIMIT") {
            s.body_limit = parse_positive("RAPPORT_BODY_LIMIT", &v)?;
        }
        if let Some(v) = non_empty("RAPPORT_LARGE_BODY_LIMIT") {
            s.large_body_limit = parse_positive("RAPPORT_LARGE_BODY_LIMIT", &v)?;
        }
        if let Some(v) = non_empty("RAPPORT_WORKERS") {
            s.workers = Some(parse_positive("RAPPORT_WORKERS", &v)?);
        }
        if let Some(v) = non_empty("RAPPORT_PUBLIC_URL") {
            let parsed = url::Url::parse(v.trim()).map_err(|e| ConfigError::Invalid {
                name: "RAPPORT_PUBLIC_URL",
                problem: format!("must be an absolute http(s) URL: {e}"),
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(ConfigError::Invalid {
                    name: "RAPPORT_PUBLIC_URL",
                    problem: "must be an absolute http(s) URL with a host".into(),
                });
            }
            s.public_url = Some(v.trim().trim_end_matches('/').to_string());
        }
        if let Some(v) = non_empty("RAPPORT_CDS_CORS_ORIGINS") {
            s.cds_cors_origins = parse_origins(&v)?;
        }
        if let Some(v) = non_empty("RAPPORT_TRUST_FORWARDED") {
            s.trust_forwarded = parse_bool("RAPPORT_TRUST_FORWARDED", &v)?;
        }
        if let Some(v) = non_empty("RAPPORT_WEBHOOK_ALLOW_PRIVATE") {
            s.webhook_allow_private = parse_bool("RAPPORT_WEBHOOK_ALLOW_PRIVATE", &v)?;
        }
        if let Some(v) = non_empty("RAPPORT_RATE_LIMIT_PER_MINUTE") {
            s.rate_limit_per_minute = parse_positive("RAPPORT_RATE_LIMIT_PER_MINUTE", &v)? as u32;
        }
        if let Some(v) = non_empty("RAPPORT_OUTBOX_WORKERS") {
            s.outbox_workers = v.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "RAPPORT_OUTBOX_WORKERS",
                problem: "must be a whole number (0 leaves the outbox to other instances)".into(),
            })?;
        }
        if let Some(v) = non_empty("RAPPORT_EVENT_RETENTION_DAYS") {
            let days = parse_positive("RAPPORT_EVENT_RETENTION_DAYS", &v)?;
            s.event_retention = Duration::from_secs(days as u64 * 24 * 3600);
        }
        if let Some(v) = non_empty("RAPPORT_WRITE_BATCH") {
            s.write_batch = parse_positive("RAPPORT_WRITE_BATCH", &v)?;
        }
        if let Some(v) = non_empty("RAPPORT_WRITERS") {
            s.writers = parse_positive("RAPPORT_WRITERS", &v)?;
        }
        if let Some(v) = non_empty("RAPPORT_CITUS") {
            s.citus = match v.trim() {
                "auto" => CitusMode::Auto,
                "require" => CitusMode::Require,
                "off" => CitusMode::Off,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "RAPPORT_CITUS",
                        problem: "must be auto, require or off".into(),
                    });
                }
            };
        }
        if let Some(v) = non_empty("RAPPORT_WEBHOOK_RETRY_SECS") {
            s.webhook_retry = parse_schedule("RAPPORT_WEBHOOK_RETRY_SECS", &v)?;
        }
        s.bootstrap_client_id = non_empty("RAPPORT_BOOTSTRAP_CLIENT_ID");
        s.bootstrap_client_secret = non_empty("RAPPORT_BOOTSTRAP_CLIENT_SECRET");
        if s.bootstrap_client_id.is_some() != s.bootstrap_client_secret.is_some() {
            return Err(ConfigError::Invalid {
                name: "RAPPORT_BOOTSTRAP_CLIENT_ID",
                problem: "set both RAPPORT_BOOTSTRAP_CLIENT_ID and RAPPORT_BOOTSTRAP_CLIENT_SECRET, or neither".into(),
            });
        }
        Ok(s)
    }
}

/// Comma-separated browser origins: scheme, host and optional port, nothing else.
fn parse_origins(value: &str) -> Result<Vec<String>, ConfigError> {
    let invalid = |problem: String| ConfigError::Invalid {
        name: "RAPPORT_CDS_CORS_ORIGINS",
        problem,
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| crate::outbound::web_origin(o).map_err(invalid))
        .collect()
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            problem: "must be true or false".into(),
        }),
    }
}

/// Comma-separated non-negative seconds (fractions allowed), each at most a day.
fn parse_schedule(name: &'static str, value: &str) -> Result<Vec<Duration>, ConfigError> {
    value
        .split(',')
        .map(|part| match part.trim().parse::<f64>() {
            Ok(secs) if secs.is_finite() && (0.0..=86_400.0).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
            _ => Err(ConfigError::Invalid {
                name,
                problem: format!("`{}` is not a number of seconds between 0 and 86400", part.trim()),
            }),
        })
        .collect()
}

fn parse_positive(name: &'static str, value: &str) -> Result<usize, ConfigError> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::Invalid {
            name,
            problem: "must be a positive whole number".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn cds_cors_origins_are_bare_origins() {
        let s = from(&[(
            "RAPPORT_CDS_CORS_ORIGINS",
            "https://ehr-ui.example, http://localhost:3000/",
        )])
        .unwrap();
        assert_eq!(
            s.cds_cors_origins,
            vec!["https://ehr-ui.example", "http://localhost:3000"]
        );
        for bad in ["https://ehr.example/app", "not an origin", "ftp://ehr.example"] {
            assert!(from(&[("RAPPORT_CDS_CORS_ORIGINS", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_work_with_nothing_set() {
        let s = from(&[]).unwrap();
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert_eq!(s.database_url, "postgres://postgres@127.0.0.1:5432/rapport");
        assert!(s.jwt_secret.is_none());
    }

    #[test]
    fn short_jwt_secret_is_refused() {
        assert!(from(&[("RAPPORT_JWT_SECRET", "short")]).is_err());
        assert!(from(&[("RAPPORT_JWT_SECRET", &"x".repeat(32))]).is_ok());
    }

    #[test]
    fn bootstrap_credentials_come_in_pairs() {
        assert!(from(&[("RAPPORT_BOOTSTRAP_CLIENT_ID", "a")]).is_err());
        let s = from(&[
            ("RAPPORT_BOOTSTRAP_CLIENT_ID", "a"),
            ("RAPPORT_BOOTSTRAP_CLIENT_SECRET", "b"),
        ])
        .unwrap();
        assert_eq!(s.bootstrap_client_id.as_deref(), Some("a"));
    }

    #[test]
    fn bad_numbers_are_refused() {
        assert!(from(&[("RAPPORT_DB_POOL_SIZE", "0")]).is_err());
        assert!(from(&[("RAPPORT_BODY_LIMIT", "lots")]).is_err());
        assert!(from(&[("RAPPORT_CLIENT_STATUS_TTL_SECS", "61")]).is_err());
        assert_eq!(
            from(&[("RAPPORT_EXPECTED_CHECK_SECS", "5")]).unwrap().expected_check,
            Duration::from_secs(5)
        );
        assert!(from(&[("RAPPORT_EXPECTED_CHECK_SECS", "0")]).is_err());
    }

    #[test]
    fn the_webhook_retry_schedule_is_read_and_checked() {
        assert_eq!(from(&[]).unwrap().webhook_retry.len(), 7);
        let s = from(&[("RAPPORT_WEBHOOK_RETRY_SECS", "0.5, 2,10")]).unwrap();
        assert_eq!(
            s.webhook_retry,
            vec![
                Duration::from_millis(500),
                Duration::from_secs(2),
                Duration::from_secs(10)
            ]
        );
        assert!(from(&[("RAPPORT_WEBHOOK_RETRY_SECS", "5,soon")]).is_err());
        assert!(from(&[("RAPPORT_WEBHOOK_RETRY_SECS", "-1")]).is_err());
        assert!(from(&[("RAPPORT_WEBHOOK_ALLOW_PRIVATE", "yes")]).is_err());
        assert!(
            from(&[("RAPPORT_WEBHOOK_ALLOW_PRIVATE", "true")])
                .unwrap()
                .webhook_allow_private
        );
    }
}
