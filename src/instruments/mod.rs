//! The instrument catalogue: built-in definitions (global, read-only, embedded in the
//! binary) and each organisation's own versioned instruments with their lifecycle
//! draft -> published (immutable) -> retired. Definitions are data, never code.

pub mod builtin;
pub mod lifecycle;
pub mod lookup;
pub mod model;
pub mod routes;
pub mod scoring;
pub mod service;
pub mod store;
pub mod validate;

use crate::ids::OrgId;
use diesel_async::AsyncPgConnection;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::scoring::InstrumentDefinition;
use model::{InstrumentStatus, InstrumentVersion, NewInstrument};
use store::VersionRow;

pub use lookup::{LookupError, Wanted, find};

pub const BUILTIN_OWNER: &str = "builtin";

/// One instrument version, as clients see it and as the scoring core runs it.
#[derive(Debug, Clone)]
pub struct LoadedInstrument {
    pub org: Option<OrgId>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub version: InstrumentVersion,
    pub definition: InstrumentDefinition,
}

impl LoadedInstrument {
    pub fn status(&self) -> InstrumentStatus {
        self.version.status
    }
}

/// Turns a stored row into a loaded instrument; `owner` is `builtin` or the org's slug.
pub fn load(row: VersionRow, owner: &str) -> ApiResult<LoadedInstrument> {
    let spec: NewInstrument = serde_json::from_value(row.definition)
        .map_err(|e| ApiError::internal(format!("stored definition {}@{} unreadable: {e}", row.key, row.version)))?;
    let definition = validate::validate(&spec)
        .map_err(|e| ApiError::internal(format!("stored definition {}@{} invalid: {e:?}", row.key, row.version)))?;
    let status = InstrumentStatus::parse(&row.status)
        .ok_or_else(|| ApiError::internal(format!("unknown instrument status {}", row.status)))?;
    let owner = if row.org_id.is_some() {
        owner.to_string()
    } else {
        BUILTIN_OWNER.to_string()
    };
    Ok(LoadedInstrument {
        org: row.org_id,
        created_at: row.created_at,
        version: InstrumentVersion::new(spec, row.version, status, owner),
        definition,
    })
}

pub async fn owner_slug(conn: &mut AsyncPgConnection, row: &VersionRow) -> ApiResult<String> {
    match row.org_id {
        None => Ok(BUILTIN_OWNER.to_string()),
        Some(org) => Ok(crate::organizations::store::slug_of(conn, org)
            .await?
            .unwrap_or_default()),
    }
}

/// What scoring a response's answers gave: the score or why there is none, and every flag
/// the response has (item flags always, score-based flags when scored).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub score: Option<crate::scoring::Score>,
    pub score_error: Option<String>,
    pub flags: Vec<String>,
}

/// Scores answers against a loaded version, or a 422 naming every bad answer as
/// `{prefix}/answers/{item id}`.
pub fn score_answers(
    instrument: &LoadedInstrument,
    answers: &std::collections::BTreeMap<String, serde_json::Value>,
    prefix: &str,
) -> ApiResult<Scored> {
    use crate::scoring::ScoreOutcome;
    match crate::scoring::score(&instrument.definition, answers) {
        Ok(ScoreOutcome::Scored(score)) => Ok(Scored {
            flags: score.flags.clone(),
            score: Some(score),
            score_error: None,
        }),
        Ok(ScoreOutcome::Unscored { reason, flags }) => Ok(Scored {
            score: None,
            score_error: Some(reason),
            flags,
        }),
        Err(errors) => Err(ApiError::Validation(
            errors
                .into_iter()
                .map(|e| {
                    FieldError::new(
                        format!("{prefix}/answers/{}", crate::error::escape_pointer(&e.item_id)),
                        e.detail,
                    )
                })
                .collect(),
        )),
    }
}

/// The instrument version a series was scored with (its latest point's): stored responses
/// name versions that exist, so a failed lookup is the database's or an internal fault.
pub async fn instrument_at(
    conn: &mut AsyncPgConnection,
    builtins: &builtin::BuiltinCatalogue,
    org: OrgId,
    key: &str,
    version: i32,
) -> ApiResult<std::sync::Arc<LoadedInstrument>> {
    find(conn, builtins, org, key, Wanted::Exact(version))
        .await
        .map_err(LookupError::in_path)
}
