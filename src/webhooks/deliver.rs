//! Delivery workers: every instance runs them. A worker locks due deliveries (`FOR UPDATE
//! SKIP LOCKED`), signs and sends each one, and records what came of it before it commits.
//! An instance that dies mid-attempt takes its locks with it: another worker sends those
//! messages again at once, with the same `webhook-id` (at least once; duplicates only after
//! a crash).

use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use rand::Rng as _;

use super::signature;
use super::store::{self, Claimed, Outcome};
use crate::db::DbPool;
use crate::error::ApiError;
use crate::ids::OrgId;
use crate::outbound::{self as target, CheckedResolver};

/// Deliveries taken at once by one worker (sent concurrently).
const BATCH: i64 = 16;
/// No answer within this is a failed attempt.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// At most this much of an answer's body is read (and then dropped).
const MAX_ANSWER: usize = 64 * 1024;
/// How long an idle worker waits before looking again.
const IDLE: Duration = Duration::from_millis(200);
/// Worker tasks per instance.
pub const WORKERS: usize = 1;

/// What a delivery worker uses: its pool, HTTP client, retry schedule, whether private
/// addresses are allowed (tests only), and its attempt counter (by outcome).
pub struct DeliveryEnvironment {
    pub pool: DbPool,
    pub client: reqwest::Client,
    pub retry: Vec<Duration>,
    pub allow_private: bool,
    pub attempts: prometheus::IntCounterVec,
    /// How long kept events stay for replays (`RAPPORT_EVENT_RETENTION_DAYS`).
    pub retention: Duration,
    /// The order organisations are served in.
    pub rotation: crate::db::OrgRotation,
}

/// How often a delivery worker forgets kept events past their retention.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The HTTP client of the delivery workers: rustls, no redirects, no proxy (the address
/// connected must be the address checked), 10 s for the whole attempt, and a resolver
/// that never hands out a forbidden address.
pub fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .dns_resolver(Arc::new(CheckedResolver { allow_private }))
        .user_agent(concat!("rapport-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Runs until the process ends.
pub async fn run(env: Arc<DeliveryEnvironment>) {
    let mut pruned_at: Option<std::time::Instant> = None;
    loop {
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(std::time::Instant::now());
            if let Ok(mut conn) = crate::db::conn(&env.pool).await
                && let Err(e) = super::kept::prune(&mut conn, env.retention).await
            {
                log::warn!(target: "rapport::webhooks", "pruning kept events: {e}");
            }
        }
        match deliver_due(&env).await {
            Ok(0) => tokio::time::sleep(IDLE).await,
            Ok(_) => {}
            Err(e) => {
                let cause = e.cause().map(crate::error::ErrorCause::describe);
                log::warn!(target: "rapport::webhooks", "delivery worker: {e} {cause:?}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Sends every due delivery this worker could take, one organisation after another (in a
/// rotating order), each in one transaction that holds their row locks until the outcomes
/// are recorded; returns how many it took.
pub async fn deliver_due(env: &DeliveryEnvironment) -> Result<usize, ApiError> {
    let mut conn = crate::db::conn(&env.pool).await?;
    let orgs = store::organisations_with_due_deliveries(&mut conn).await?;
    let mut taken = 0;
    for org in env.rotation.round(orgs) {
        taken += deliver_due_of(env, &mut conn, org).await?;
    }
    Ok(taken)
}

async fn deliver_due_of(
    env: &DeliveryEnvironment,
    conn: &mut AsyncPgConnection,
    org: OrgId,
) -> Result<usize, ApiError> {
    conn.transaction::<_, ApiError, _>(async |conn| {
        let claimed = store::claim(conn, org, BATCH).await?;
        let attempts: Vec<_> = claimed
            .iter()
            .map(|c| attempt(&env.client, c, &env.retry, env.allow_private))
            .collect();
        let outcomes: Vec<Outcome> = futures_util::future::join_all(attempts).await;
        for (c, outcome) in claimed.iter().zip(&outcomes) {
            env.attempts.with_label_values(&[outcome_label(outcome)]).inc();
            store::record(conn, c, outcome).await?;
        }
        Ok(claimed.len())
    })
    .await
}

fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Delivered { .. } => "delivered",
        Outcome::Gone => "gone",
        Outcome::Failed { retry_in: Some(_), .. } => "retry",
        Outcome::Failed { retry_in: None, .. } => "failed",
        Outcome::EndpointDisabled => "disabled",
    }
}

/// The wait before the next attempt after `attempts_before + 1` failed ones: the schedule's
/// entry ±10%, or `None` when the schedule is spent.
pub fn next_wait(schedule: &[Duration], attempts_before: i32) -> Option<Duration> {
    let base = schedule.get(usize::try_from(attempts_before).ok()?)?;
    Some(base.mul_f64(rand::thread_rng().gen_range(0.9..=1.1)))
}

/// One attempt at one delivery.
async fn attempt(client: &reqwest::Client, c: &Claimed, schedule: &[Duration], allow_private: bool) -> Outcome {
    if c.endpoint_status != "active" {
        return Outcome::EndpointDisabled;
    }
    let failed = |status: Option<i32>, error: String| Outcome::Failed {
        status,
        error,
        retry_in: next_wait(schedule, c.attempts),
    };
    let url = match url::Url::parse(&c.url) {
        Ok(url) => url,
        Err(e) => return failed(None, format!("the endpoint's URL does not parse: {e}")),
    };
    if let Err(refused) = target::check_literal(&url, allow_private) {
        return failed(None, refused);
    }
    let id = c.event_id.to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let mut secrets = vec![c.secret.as_str()];
    secrets.extend(c.previous_secret.as_deref());
    let sent = client
        .post(url)
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signature::sign(&secrets, &id, timestamp, c.body.as_bytes()),
        )
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(c.body.clone())
        .send()
        .await;
    let mut answer = match sent {
        Ok(answer) => answer,
        Err(e) => return failed(None, describe(&e)),
    };
    let status = answer.status();
    // Read a little of the answer (a receiver may wait for that), never more than 64 KiB.
    let mut read = 0usize;
    while read < MAX_ANSWER {
        match answer.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) | Err(_) => break,
        }
    }
    let code = i32::from(status.as_u16());
    if status.is_success() {
        Outcome::Delivered { status: code }
    } else if status == reqwest::StatusCode::GONE {
        Outcome::Gone
    } else {
        failed(Some(code), format!("answered {status}"))
    }
}

/// A sentence for a failed request: timeout, refused address or connection error, with the
/// innermost cause (never the body sent).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", TIMEOUT.as_secs());
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_connect() {
        format!("could not connect: {cause}")
    } else {
        format!("request failed: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_followed_with_ten_percent_jitter_then_ends() {
        let schedule: Vec<Duration> = crate::config::DEFAULT_WEBHOOK_RETRY_SECS
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect();
        for (i, base) in schedule.iter().enumerate() {
            for _ in 0..50 {
                let wait = next_wait(&schedule, i as i32).unwrap();
                assert!(
                    wait >= base.mul_f64(0.9) && wait <= base.mul_f64(1.1),
                    "{wait:?} vs {base:?}"
                );
            }
        }
        // A first attempt plus one retry per entry: after the eighth failure, no more.
        assert_eq!(next_wait(&schedule, 7), None);
        assert_eq!(next_wait(&[], 0), None);
    }
}
