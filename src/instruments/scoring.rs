//! `POST /v1/score`: score answers against a version without storing anything.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiResult, Problem};
use crate::extract::ApiJson;
use crate::scoring::Score;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// The instrument key.
    pub instrument: String,
    /// A version; the latest published one when absent.
    #[serde(default)]
    pub instrument_version: Option<i32>,
    /// Item id -> answer; absent or null is missing.
    #[schema(value_type = Object, example = json!({"1": 4, "2": 5}))]
    pub answers: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScoreResult {
    pub instrument: String,
    pub instrument_version: i32,
    /// Null when too many items are missing for the instrument's policy.
    pub score: Option<Score>,
    /// Why there is no score.
    pub score_error: Option<String>,
    /// Every flag the answers raise: the definition's item flags (e.g. `item_9_positive`)
    /// always, scored or not, and the score-based flags when scored.
    pub score_flags: Vec<String>,
}

/// Score answers without storing anything.
#[utoipa::path(
    tag = "scoring",
    request_body = ScoreRequest,
    responses(
        (status = 200, description = "The score, or why there is none", body = ScoreResult),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        crate::edge::problems::BodyTooLarge,
        crate::edge::problems::NotJson,
        (status = 422, description = "Unknown instrument or version, or bad answers (each named by pointer)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/score")]
pub async fn score_answers(
    principal: Principal,
    state: web::Data<AppState>,
    body: ApiJson<ScoreRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let mut conn = crate::db::conn(&state.pool).await?;
    let instrument = super::find(
        &mut conn,
        &state.builtins,
        principal.org,
        &body.instrument,
        body.instrument_version.into(),
    )
    .await
    .map_err(|e| e.in_body(""))?;
    drop(conn);
    let scored = super::score_answers(&instrument, &body.answers, "")?;
    Ok(HttpResponse::Ok().json(ScoreResult {
        instrument: instrument.version.key.clone(),
        instrument_version: instrument.version.version,
        score: scored.score,
        score_error: scored.score_error,
        score_flags: scored.flags,
    }))
}
