//! Responses as clients post and read them (the OpenAPI schemas `NewResponse` and `Administration`). In code a stored
//! questionnaire is an *administration*; the URL keeps the users' word, `responses`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::FieldError;
use crate::scoring::Score;

/// The body of `POST /v1/responses` (and each item of a batch).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewResponse {
    /// Instrument key, e.g. `wai-sr`.
    pub instrument: String,
    /// Pinned version; the latest published one when absent.
    #[serde(default)]
    pub instrument_version: Option<i32>,
    /// Opaque patient reference chosen by the caller (never a name), 1-200 characters;
    /// Unicode-normalised (NFC), like every reference.
    #[serde(deserialize_with = "crate::refs::nfc_string")]
    pub patient: String,
    /// The clinician whose alliance is rated.
    #[serde(default, deserialize_with = "crate::refs::nfc_option")]
    pub clinician: Option<String>,
    #[serde(default, deserialize_with = "crate::refs::nfc_option")]
    pub episode: Option<String>,
    /// `patient` (default), `clinician` or `observer`; must be one the instrument allows.
    #[serde(default)]
    pub rater: Option<String>,
    /// RFC 3339; at most 5 minutes in the future.
    #[schema(example = "2026-03-04T15:20:00Z")]
    pub administered_at: String,
    /// Session number, 1 or more.
    #[serde(default)]
    pub session: Option<i64>,
    /// Item id -> number; absent or null is missing.
    #[schema(value_type = Object, example = json!({"1": 4, "2": 5}))]
    pub answers: BTreeMap<String, serde_json::Value>,
    /// Idempotency key, unique per organisation: a re-post with the same payload answers
    /// 200 with the stored response, with a different payload 409.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Set by the FHIR front door: the identifier's system, kept apart from its value.
    #[serde(skip)]
    pub external_system: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, diesel::AsExpression, diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "lowercase")]
pub enum ResponseStatus {
    Active,
    Voided,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, diesel::AsExpression, diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Api,
    Fhir,
}

crate::db::text_enum!(ResponseStatus { Active => "active", Voided => "voided" });
crate::db::text_enum!(Source { Api => "api", Fhir => "fhir" });

/// A stored response with its score.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Administration {
    pub id: Uuid,
    pub instrument: String,
    pub instrument_version: i32,
    pub patient: String,
    pub clinician: Option<String>,
    pub episode: Option<String>,
    /// `patient`, `clinician` or `observer`.
    #[schema(value_type = String)]
    pub rater: crate::scoring::Rater,
    pub administered_at: DateTime<Utc>,
    pub session: Option<i32>,
    pub external_id: Option<String>,
    /// The FHIR identifier's system when the response came in with one (its value is
    /// `external_id`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_system: Option<String>,
    /// The answered items (missing ones are absent).
    #[schema(value_type = Object)]
    pub answers: serde_json::Map<String, serde_json::Value>,
    pub source: Source,
    pub status: ResponseStatus,
    pub void_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Null when too many items were missing; `score_error` says why.
    pub score: Option<Score>,
    pub score_error: Option<String>,
    /// Every flag the response has: the definition's item flags (e.g. PHQ-9
    /// `item_9_positive`) from the raw answers whether or not the response could be scored,
    /// and the score-based flags (`below_cutoff`, ...) when it was.
    pub score_flags: Vec<String>,
    /// True once a FHIR `amended` resource replaced it (FHIR reads it back as `amended`).
    pub amended: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdministrationPage {
    pub items: Vec<Administration>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    /// Why the response was entered in error, 1-500 characters.
    #[schema(example = "entered for the wrong patient")]
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 1,000 responses, each as for `POST /v1/responses` (see `NewResponse`). Items are
    /// checked one by one: an item that is not a valid response is reported `invalid` in the
    /// results, not refused with the batch.
    #[schema(value_type = Vec<Object>)]
    pub responses: Vec<BatchItem>,
}

/// One batch item as its JSON text (an object), parsed into a response on its own.
#[derive(Debug)]
pub struct BatchItem(pub Box<serde_json::value::RawValue>);

impl<'de> Deserialize<'de> for BatchItem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        if raw.get().starts_with('{') {
            Ok(BatchItem(raw))
        } else {
            Err(serde::de::Error::custom("must be an object (a response)"))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    Created,
    Duplicate,
    Conflict,
    Invalid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    pub index: usize,
    pub status: BatchStatus,
    /// The stored response's id (for a conflict: the response stored under that
    /// external_id); null when invalid.
    pub id: Option<Uuid>,
    /// Problem `errors` entries, pointers relative to the item.
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub results: Vec<BatchResult>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[serde(default, deserialize_with = "crate::refs::nfc_option")]
    pub patient: Option<String>,
    #[serde(default, deserialize_with = "crate::refs::nfc_option")]
    pub clinician: Option<String>,
    #[serde(default, deserialize_with = "crate::refs::nfc_option")]
    pub episode: Option<String>,
    pub instrument: Option<String>,
    /// Only this instrument version (with `instrument`).
    pub instrument_version: Option<i32>,
    pub rater: Option<crate::scoring::Rater>,
    /// administered_at at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// administered_at before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    pub status: Option<ResponseStatus>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}
