//! The refit worker: every `RAPPORT_EXPECTED_CHECK_SECS` it looks at the expected-response
//! models with changes waiting and refits those the rule says are due
//! (`expected::due`). Any instance may run it: a refit is deterministic, and two at once
//! write the same model.

use std::sync::Arc;
use std::time::Duration;

use crate::db::DbPool;
use crate::error::ApiError;
use crate::expected::Refitter;

/// Marked models looked at per round.
const PER_ROUND: i64 = 100;

pub struct RefitEnvironment {
    pub pool: DbPool,
    pub refitter: Arc<Refitter>,
    pub every: Duration,
}

/// Runs until the process ends.
pub async fn run(env: Arc<RefitEnvironment>) {
    loop {
        tokio::time::sleep(env.every).await;
        if let Err(e) = round(&env).await {
            let cause = e.cause().map(crate::error::ErrorCause::describe);
            log::warn!(target: "rapport::expected", "refit worker: {e} {cause:?}");
        }
    }
}

/// One look at the marked models; how many were refitted.
pub async fn round(env: &RefitEnvironment) -> Result<usize, ApiError> {
    let mut conn = crate::db::conn(&env.pool).await?;
    let mut refitted = 0;
    for row in crate::expected::store::waiting(&mut conn, PER_ROUND).await? {
        let courses =
            crate::expected::store::count_courses(&mut conn, row.org_id, &row.instrument_key, &row.rater).await?;
        if crate::expected::due(&row, courses, chrono::Utc::now()) {
            crate::expected::refit(&mut conn, &env.refitter, row.org_id, &row.instrument_key, &row.rater).await?;
            refitted += 1;
        }
    }
    Ok(refitted)
}
