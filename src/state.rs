//! What every handler shares: the pool, settings, token keys and per-process caches.
//! Nothing here is needed by another instance: processes stay stateless.

use std::sync::Arc;

use crate::auth::{ClientStatusCache, JwtKeys};
use crate::config::Settings;
use crate::db::DbPool;
use crate::ops::metrics::Metrics;

pub struct AppState {
    pub pool: DbPool,
    pub settings: Arc<Settings>,
    pub jwt: JwtKeys,
    pub client_status: ClientStatusCache,
    pub metrics: Metrics,
    pub migration_versions: Vec<String>,
    pub builtins: crate::instruments::builtin::BuiltinCatalogue,
    pub norms: crate::analytics::NormsCache,
    pub routes: crate::ops::route_table::RouteTable,
}
