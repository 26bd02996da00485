//! What every handler shares: the pool, settings, token keys and per-process caches.
//! Nothing here is needed by another instance: processes stay stateless.

use std::sync::Arc;

use crate::auth::{ClientStatusCache, JwtKeys};
use crate::config::Settings;
use crate::db::DbPool;
use crate::telemetry::metrics::Metrics;

pub struct AppState {
    pub pool: DbPool,
    /// `DATABASE_READ_URL`'s pool, when configured (see `db::read_conn`).
    pub read_pool: Option<crate::db::ReadPool>,
    pub settings: Arc<Settings>,
    pub jwt: JwtKeys,
    pub client_status: ClientStatusCache,
    pub metrics: Metrics,
    pub migration_versions: Vec<String>,
    /// Postgres or Citus, as decided at start (`db::citus::prepare`).
    pub engine: crate::db::citus::Engine,
    pub builtins: Arc<crate::instruments::builtin::BuiltinCatalogue>,
    pub norms: Arc<crate::norms::NormsCache>,
    /// The outbox worker's organisation norms (see `alerts::AlertEvaluator`): erasure
    /// clears them; trends on the instance that took a response use fresh ones.
    pub worker_norms: Arc<crate::norms::NormsCache>,
    pub routes: crate::edge::route_table::RouteTable,
    /// The group-commit writer of single responses (its own connection).
    pub writer: crate::responses::writer::Writer,
    /// The response use cases' context (the same built-ins, writer and norms cache).
    pub ingest: crate::responses::service::IngestContext,
    /// Requests per client (`RAPPORT_RATE_LIMIT_PER_MINUTE`).
    pub rate_limit: crate::telemetry::rate_limit::RateLimiter,
    /// Failed authentications per client id at the token endpoint (10 a minute).
    pub auth_failures: crate::telemetry::rate_limit::RateLimiter,
    /// Verifies identity providers' tokens (its provider cache, and the shared key sets).
    pub identity: crate::identity::IdentityVerifier,
    /// Verifies CDS clients' JWTs (its client cache, and the shared key sets).
    pub cds: crate::cds::CdsVerifier,
    /// rapport as the EHRs' OAuth client (SMART App Launch): their configurations, the code
    /// exchange and id_token checks.
    pub ehr: crate::launch::ehr::EhrClient,
    /// Refits expected-response models (`?refit=true`; the refit worker holds the same).
    pub refitter: Arc<crate::expected::Refitter>,
    /// Fetched JWK sets of asymmetric clients and identity providers.
    pub jwks: Arc<crate::auth::jwks::JwksCache>,
    /// `RAPPORT_PUBLIC_URL`, or `http://` and the bound address: the base of the token
    /// endpoint URL that client assertions name as `aud`.
    pub public_url: String,
}

impl AppState {
    /// The handler prologue: 403 unless the caller holds `scope`, then a pooled connection
    /// to the primary (503 when none is free in time).
    pub async fn conn_for(
        &self,
        principal: &crate::auth::Principal,
        scope: crate::auth::Scope,
    ) -> Result<crate::db::DbConn, crate::error::ApiError> {
        principal.require(scope)?;
        crate::db::conn(&self.pool).await
    }

    /// A connection for a read that may lag slightly behind writes: analytics, exports,
    /// FHIR searches and lists. The replica when configured and up, else the primary.
    pub async fn read_conn(&self) -> Result<crate::db::DbConn, crate::error::ApiError> {
        let (conn, served) = crate::db::read_conn(&self.pool, self.read_pool.as_ref()).await?;
        self.metrics.read_served(served);
        Ok(conn)
    }
}
