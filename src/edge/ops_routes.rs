use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use crate::telemetry::metrics::PoolFigures;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
    /// Readiness only: the primary database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Readiness only, with `DATABASE_READ_URL`: `ready`, `behind ...` or `unavailable ...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Readiness only: `postgres` or `citus`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Readiness on Citus: the active primary worker nodes that hold shards (the coordinator
    /// not counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citus_workers: Option<i64>,
}

/// Liveness: the process is up (no database check).
#[utoipa::path(tag = "operations", responses((status = 200, description = "Up", body = Health)), security(()))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        primary: None,
        replica: None,
        engine: None,
        citus_workers: None,
    })
}

/// Readiness: the database answers and every embedded migration is applied.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Database unreachable or migrations missing", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    if !crate::db::is_ready(&state.pool, &state.migration_versions).await? {
        return Err(ApiError::unavailable("migrations not applied"));
    }
    // Ready with the primary alone: reads fall back to it when the replica is down.
    let replica = match &state.read_pool {
        None => None,
        Some(read) => Some(
            match crate::db::is_ready(&read.pool, &state.migration_versions).await {
                Ok(true) => "ready",
                Ok(false) => "behind (migrations not replayed yet)",
                Err(_) => "unavailable (reads use the primary)",
            }
            .to_string(),
        ),
    };
    let citus_workers = match state.engine {
        crate::db::citus::Engine::Postgres => None,
        crate::db::citus::Engine::Citus => {
            let mut conn = crate::db::conn(&state.pool).await?;
            crate::db::citus::workers(&mut conn).await?
        }
    };
    Ok(HttpResponse::Ok().json(Health {
        status: "ready".into(),
        primary: Some("ready".into()),
        replica,
        engine: Some(state.engine.as_str().into()),
        citus_workers,
    }))
}

/// Prometheus metrics: request counts and latency histograms by route and status, pool usage.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
    security(())
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // The background work's figures need the database; without it they keep their last value.
    if let Ok(mut conn) = crate::db::conn(&state.pool).await
        && let Ok((lag, alerts)) = crate::outbox::background_figures(&mut conn).await
    {
        state.metrics.set_background(lag, &alerts);
        if let Ok(deliveries) = crate::webhooks::store::counts_by_status(&mut conn).await {
            state.metrics.set_deliveries(&deliveries);
        }
    }
    let figures = |pool: &crate::db::DbPool| {
        let status = pool.status();
        PoolFigures {
            max: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        }
    };
    let mut pools = vec![("primary", figures(&state.pool))];
    if let Some(read) = &state.read_pool {
        pools.push(("replica", figures(&read.pool)));
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&pools))
}

/// Any unmatched request: 405 with `Allow` when the path is known but the method is not
/// documented for it, else 404.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    unmatched(&req)
}

/// 405 (with `Allow`) when the method is not documented for this path, else 404. Also used
/// when a path parameter does not parse: `GET /v1/responses/batch` is a wrong method, not an
/// unknown response id.
pub fn unmatched(req: &actix_web::HttpRequest) -> HttpResponse {
    let allowed = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.routes.allowed(req.path()));
    match allowed {
        Some(methods) if !methods.iter().any(|m| m == req.method().as_str()) => {
            let mut response = crate::error::problem_with_status(
                actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
                &format!("this path accepts {}", methods.join(", ")),
            );
            if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&methods.join(", ")) {
                response.headers_mut().insert(actix_web::http::header::ALLOW, value);
            }
            response
        }
        _ => actix_web::ResponseError::error_response(&ApiError::NotFound),
    }
}
