//! Finding the instrument version a request names: the one lookup every front door uses
//! (REST bodies, query parameters, FHIR canonicals, stored responses). Built-ins come from
//! memory first; an organisation's own versions from the database. The error says what was
//! missing, so each caller answers in its own terms (422 on a body field, 404 on a path or
//! query) and a database failure stays a database failure.

use crate::ids::OrgId;
use std::sync::Arc;

use diesel_async::AsyncPgConnection;

use super::builtin::BuiltinCatalogue;
use super::{LoadedInstrument, load, owner_slug, store};
use crate::error::{ApiError, FieldError};

/// Which version of a key is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wanted {
    /// The latest published version (what a new response is scored with by default).
    LatestPublished,
    /// Exactly this version, whatever its status.
    Exact(i32),
    /// The highest version, whatever its status (the export's column layout).
    Highest,
}

impl From<Option<i32>> for Wanted {
    fn from(pin: Option<i32>) -> Self {
        pin.map_or(Wanted::LatestPublished, Wanted::Exact)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no instrument `{0}`")]
    UnknownKey(String),
    #[error("no version {1} of instrument `{0}`")]
    UnknownVersion(String, i32),
    #[error("no published version of instrument `{0}`: its versions are drafts or retired")]
    NotPublished(String),
    #[error(transparent)]
    Database(ApiError),
}

impl From<diesel::result::Error> for LookupError {
    fn from(e: diesel::result::Error) -> Self {
        LookupError::Database(e.into())
    }
}

impl From<ApiError> for LookupError {
    fn from(e: ApiError) -> Self {
        LookupError::Database(e)
    }
}

impl LookupError {
    /// The body named it: 422 on `/instrument` (unknown key, nothing published) or
    /// `/instrument_version` (unknown version), under `prefix`.
    pub fn in_body(self, prefix: &str) -> ApiError {
        let pointer = match &self {
            LookupError::UnknownVersion(..) => "/instrument_version",
            LookupError::UnknownKey(_) | LookupError::NotPublished(_) => "/instrument",
            LookupError::Database(_) => return self.in_path(),
        };
        let detail = self.to_string();
        ApiError::Validation(vec![FieldError::new(format!("{prefix}{pointer}"), detail)])
    }

    /// A path or query parameter named it: 404, as for any id the caller cannot see.
    pub fn in_path(self) -> ApiError {
        match self {
            LookupError::Database(e) => e,
            _ => ApiError::NotFound,
        }
    }
}

/// The version `wanted` of `key` as the organisation `org` sees it.
pub async fn find(
    conn: &mut AsyncPgConnection,
    builtins: &BuiltinCatalogue,
    org: OrgId,
    key: &str,
    wanted: Wanted,
) -> Result<Arc<LoadedInstrument>, LookupError> {
    let pin = match wanted {
        Wanted::Exact(v) => Some(v),
        Wanted::LatestPublished | Wanted::Highest => None,
    };
    if let Some(builtin) = builtins.get(key, pin) {
        return Ok(builtin);
    }
    let row = match wanted {
        Wanted::Exact(v) => store::find_version(conn, org, key, v).await?,
        Wanted::LatestPublished => store::latest_published(conn, org, key).await?,
        Wanted::Highest => store::versions_of(conn, org, key)
            .await?
            .into_iter()
            .max_by_key(|r| r.version),
    };
    match row {
        Some(row) => {
            let owner = owner_slug(conn, &row).await?;
            Ok(Arc::new(load(row, &owner)?))
        }
        // Only the failing path asks the second question: is the key known at all?
        None if builtins.get(key, None).is_some() || !store::versions_of(conn, org, key).await?.is_empty() => {
            Err(match wanted {
                Wanted::Exact(v) => LookupError::UnknownVersion(key.to_string(), v),
                _ => LookupError::NotPublished(key.to_string()),
            })
        }
        None => Err(LookupError::UnknownKey(key.to_string())),
    }
}

/// A query parameter names `key`: 404 (the body of an unknown id) unless the caller can see
/// some version of it.
pub async fn require_visible(
    conn: &mut AsyncPgConnection,
    builtins: &BuiltinCatalogue,
    org: OrgId,
    key: &str,
) -> Result<Arc<LoadedInstrument>, ApiError> {
    find(conn, builtins, org, key, Wanted::Highest)
        .await
        .map_err(LookupError::in_path)
}
