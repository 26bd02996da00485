//! The authenticated caller: `Principal { org, client_id, scopes }` and its scope checks,
//! and the per-process memory of clients known not to be revoked. No web types: the web
//! edge (`edge::authenticate`) makes a principal from a request.

use crate::ids::{ClientId, OrgId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Scope;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone)]
pub struct Principal {
    pub org: OrgId,
    /// An API client's `client_id`; for a user signed in through an identity provider, the
    /// actor name `idp:{provider id}:{sub}` that rate limits and the audit log use.
    pub client_id: ClientId,
    pub scopes: Vec<Scope>,
    /// A launch token's patient (SMART App Launch): the caller reads this patient only,
    /// no aggregate and no other patient.
    pub patient: Option<String>,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Aggregate analytics: `analytics:read`, or `responses:read` (patient-level access
    /// includes the aggregates).
    pub fn require_analytics(&self) -> ApiResult<()> {
        if self.patient.is_some() {
            return Err(ApiError::Forbidden(
                "a token launched for one patient cannot read aggregates".into(),
            ));
        }
        if self.has(Scope::AnalyticsRead) || self.has(Scope::ResponsesRead) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this operation needs the `analytics:read` (or `responses:read`) scope".into(),
            ))
        }
    }

    /// Whether the caller may see this patient's data: always, unless the token is bound
    /// to another patient.
    pub fn sees(&self, patient: &str) -> bool {
        self.patient.as_deref().is_none_or(|bound| bound == patient)
    }

    /// A list's patient filter for this caller: the bound patient replaces a missing
    /// filter; a filter naming another patient finds nobody.
    pub fn patient_filter(&self, requested: Option<&str>) -> PatientFilter {
        match (&self.patient, requested) {
            (None, requested) => PatientFilter::Filter(requested.map(str::to_string)),
            (Some(bound), Some(requested)) if crate::refs::nfc(requested) != *bound => PatientFilter::Nobody,
            (Some(bound), _) => PatientFilter::Filter(Some(bound.clone())),
        }
    }

    /// 403 unless the token carries `scope`.
    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("this operation needs the `{scope}` scope")))
        }
    }
}

/// What a list may show of patients (`Principal::patient_filter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientFilter {
    /// The filter to apply (`None`: every patient).
    Filter(Option<String>),
    /// The list is empty: the filter names a patient the caller may not see.
    Nobody,
}

/// Remembers, per process and for a bounded time, that a client was not revoked, so that a
/// request does not pay a database round trip for it. The bound (at most 60 s, default 30 s)
/// is how long another instance may keep honouring a revoked client's tokens; the instance
/// that revokes forgets at once.
pub struct ClientStatusCache {
    ttl: Duration,
    active_until: Mutex<HashMap<(OrgId, ClientId), Instant>>,
}

impl ClientStatusCache {
    pub fn new(ttl: Duration) -> Self {
        ClientStatusCache {
            ttl,
            active_until: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_known_active(&self, org: OrgId, client_id: &ClientId) -> bool {
        let Ok(map) = self.active_until.lock() else {
            return false;
        };
        map.get(&(org, client_id.clone()))
            .is_some_and(|until| *until > Instant::now())
    }

    pub fn remember_active(&self, org: OrgId, client_id: &ClientId) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = self.active_until.lock() {
            if map.len() > 10_000 {
                let now = Instant::now();
                map.retain(|_, until| *until > now);
            }
            map.insert((org, client_id.clone()), Instant::now() + self.ttl);
        }
    }

    pub fn forget(&self, org: OrgId, client_id: &ClientId) {
        if let Ok(mut map) = self.active_until.lock() {
            map.remove(&(org, client_id.clone()));
        }
    }
}
