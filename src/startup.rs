//! Building and running the service: database, migrations, bootstrap, keys, HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use rand::RngCore;
use utoipa::OpenApi as _;
use utoipa_actix_web::AppExt as _;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::{ClientStatusCache, JwtKeys, Scope};
use crate::clients::store::PreparedCredentials;
use crate::config::Settings;
use crate::db::{self, BoxError, DbPool};
use crate::error::ApiError;
use crate::organizations::model::CreatedOrganization;
use crate::state::AppState;
use crate::telemetry::metrics::Metrics;

pub struct Application {
    port: u16,
    server: Server,
    /// The `default` organisation and its administrator, when this start created them.
    pub bootstrap: Option<CreatedOrganization>,
    /// True when the bootstrap credentials were generated (and so must be shown once).
    pub bootstrap_generated: bool,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, BoxError> {
        db::ensure_database(&settings.database_url).await?;
        db::run_migrations(&settings.database_url).await?;
        let engine = db::citus::prepare(&settings.database_url, settings.citus).await?;
        let pool = db::create_pool(&settings)?;
        let mut conn = pool.get().await?;
        let secret = match &settings.jwt_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => load_or_create_jwt_secret(&mut conn).await?,
        };
        let bootstrap_generated = settings.bootstrap_client_id.is_none();
        let bootstrap = bootstrap(&mut conn, &settings).await?;
        crate::instruments::builtin::load_builtins(&mut conn).await?;
        drop(conn);

        let listener = TcpListener::bind(&settings.bind)?;
        let local = listener.local_addr()?;
        let port = local.port();
        let public = crate::config::PublicBase {
            url: settings.public_url.clone().unwrap_or_else(|| format!("http://{local}")),
            trust_forwarded: settings.trust_forwarded,
        };
        let metrics = Metrics::new()?;
        let writer = crate::responses::writer::Writer::start(
            db::create_pool(&Settings {
                pool_size: settings.writers,
                ..settings.clone()
            })?,
            settings.writers,
            settings.write_batch,
            metrics.write_group_size.clone(),
        );
        let read_pool = match &settings.database_read_url {
            Some(_) if engine == db::citus::Engine::Citus => {
                log::warn!("DATABASE_READ_URL is ignored on Citus: a replica of the coordinator holds no shards");
                None
            }
            Some(url) => Some(db::ReadPool::new(db::create_pool(&Settings {
                database_url: url.clone(),
                ..settings.clone()
            })?)),
            None => None,
        };
        let jwks = Arc::new(crate::auth::jwks::JwksCache::new(settings.webhook_allow_private)?);
        let builtins = Arc::new(crate::instruments::builtin::BuiltinCatalogue::load()?);
        let worker_norms: Arc<crate::norms::NormsCache> = Default::default();
        let norms: Arc<crate::norms::NormsCache> = Default::default();
        let outbox = Arc::new(crate::workers::outbox::OutboxEnvironment {
            pool: pool.clone(),
            retention: settings.event_retention,
            processed: metrics.outbox_counter(),
            // In order: the kept series, the expected-response models' change marks, then
            // alerts (which announce what they raised), then the webhook messages of the
            // responses and of what was announced.
            consumers: vec![
                Box::new(crate::analytics::kept_series::KeptSeries),
                Box::new(crate::expected::consumer::ExpectedModels),
                Box::new(crate::alerts::AlertEvaluator {
                    builtins: builtins.clone(),
                    norms: worker_norms.clone(),
                }),
                Box::new(crate::webhooks::consumer::WebhookMessages),
            ],
            rotation: Default::default(),
        });
        let refitter = Arc::new(crate::expected::Refitter {
            builtins: builtins.clone(),
            alerts: crate::alerts::AlertEvaluator {
                builtins: builtins.clone(),
                norms: worker_norms.clone(),
            },
            models: Default::default(),
        });
        let state = web::Data::new(AppState {
            refitter: refitter.clone(),
            read_pool,
            jwt: JwtKeys::new(&secret, &settings.jwt_issuer, &settings.jwt_audience)?,
            client_status: ClientStatusCache::new(settings.client_status_ttl),
            metrics,
            migration_versions: db::embedded_migration_versions(),
            engine,
            ingest: crate::responses::service::IngestContext {
                builtins: builtins.clone(),
                writer: writer.clone(),
                norms: norms.clone(),
            },
            builtins,
            norms,
            worker_norms,
            routes: crate::edge::route_table::RouteTable::from_openapi(&crate::openapi::document()),
            writer,
            identity: crate::identity::IdentityVerifier {
                pool: pool.clone(),
                providers: crate::auth::issuer_cache::IssuerCache::new(settings.client_status_ttl),
                jwks: jwks.clone(),
            },
            rate_limit: crate::telemetry::rate_limit::RateLimiter::new(settings.rate_limit_per_minute),
            auth_failures: crate::telemetry::rate_limit::RateLimiter::new(crate::auth::routes::FAILED_AUTH_PER_MINUTE),
            cds: crate::cds::CdsVerifier::new(pool.clone(), settings.client_status_ttl, jwks.clone()),
            ehr: crate::launch::ehr::EhrClient::new(settings.webhook_allow_private, jwks.clone())?,
            jwks,
            public_url: public.url.clone(),
            settings: Arc::new(settings.clone()),
            pool,
        });
        // The outbox workers of this instance (alerts and webhook messages after each change
        // to a response): events of different series are evaluated in parallel, one series
        // at a time whatever the worker or instance, under its advisory lock.
        for _ in 0..settings.outbox_workers {
            tokio::spawn(crate::workers::outbox::run(outbox.clone()));
        }
        // Its refit worker (expected-response models with changes waiting).
        tokio::spawn(crate::workers::expected::run(Arc::new(
            crate::workers::expected::RefitEnvironment {
                pool: state.pool.clone(),
                refitter,
                every: settings.expected_check,
            },
        )));
        // Its webhook delivery workers.
        let delivery = Arc::new(crate::webhooks::deliver::DeliveryEnvironment {
            pool: state.pool.clone(),
            client: crate::webhooks::deliver::client(settings.webhook_allow_private)?,
            retry: settings.webhook_retry.clone(),
            allow_private: settings.webhook_allow_private,
            attempts: state.metrics.webhook_attempts(),
            retention: settings.event_retention,
            rotation: Default::default(),
        });
        for _ in 0..crate::webhooks::deliver::WORKERS {
            tokio::spawn(crate::webhooks::deliver::run(delivery.clone()));
        }
        let mut server = HttpServer::new(move || build_app(state.clone(), public.clone()))
            .listen(listener)?
            .shutdown_timeout(30)
            .client_request_timeout(settings.client_request_timeout)
            .client_disconnect_timeout(Duration::from_secs(5));
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        Ok(Application {
            port,
            server: server.run(),
            bootstrap,
            bootstrap_generated,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped; SIGTERM and SIGINT stop gracefully (in-flight requests finish).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn build_app(
    state: web::Data<AppState>,
    public: crate::config::PublicBase,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, api) = App::new()
        .into_utoipa_app()
        .openapi(crate::openapi::ApiDoc::openapi())
        .configure(crate::routes)
        .split_for_parts();
    let limits = crate::extract::BodyLimits {
        standard: state.settings.body_limit,
        large: state.settings.large_body_limit,
        timeout: state.settings.client_request_timeout,
    };
    app.app_data(state)
        .app_data(limits)
        .app_data(public)
        .app_data(web::PathConfig::default().error_handler(|err, req| {
            actix_web::error::InternalError::from_response(err, crate::edge::ops_routes::unmatched(req)).into()
        }))
        .app_data(
            web::QueryConfig::default()
                .error_handler(|e, _| ApiError::BadRequest(format!("invalid query parameters: {e}")).into()),
        )
        // `/docs` (no slash) is where people type it: send them to the UI.
        .route(
            "/docs",
            web::get().to(|| async {
                actix_web::HttpResponse::PermanentRedirect()
                    .insert_header((actix_web::http::header::LOCATION, "/docs/"))
                    .finish()
            }),
        )
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api))
        .configure(crate::console::configure)
        .configure(crate::launch::routes::configure)
        .default_service(web::to(crate::edge::ops_routes::not_found))
        .wrap(from_fn(crate::edge::middleware::no_store))
        .wrap(from_fn(crate::edge::middleware::frame_guard))
        .wrap(from_fn(crate::edge::middleware::cds_cors))
        .wrap(from_fn(crate::edge::middleware::reject_nul))
        .wrap(from_fn(crate::edge::middleware::problem_fallback))
        .wrap(from_fn(crate::edge::middleware::fhir_outcomes))
        .wrap(from_fn(crate::edge::middleware::observe))
        .wrap(from_fn(crate::edge::middleware::head_as_get))
}

const JWT_SECRET_NAME: &str = "jwt_signing_key";

/// The generated signing key: made once by whichever instance starts first, then shared.
async fn load_or_create_jwt_secret(conn: &mut AsyncPgConnection) -> Result<Vec<u8>, BoxError> {
    use crate::schema::service_secrets;
    let mut fresh = vec![0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    diesel::insert_into(service_secrets::table)
        .values((
            service_secrets::name.eq(JWT_SECRET_NAME),
            service_secrets::value.eq(&fresh),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(service_secrets::table
        .filter(service_secrets::name.eq(JWT_SECRET_NAME))
        .select(service_secrets::value)
        .first(conn)
        .await?)
}

/// On the very first start (no organisation at all), creates `default` and an administrator
/// client holding every scope. Serialised by an advisory lock so two instances starting at
/// once create it once.
async fn bootstrap(conn: &mut AsyncPgConnection, settings: &Settings) -> Result<Option<CreatedOrganization>, BoxError> {
    let given = settings
        .bootstrap_client_id
        .clone()
        .zip(settings.bootstrap_client_secret.clone());
    let credentials = tokio::task::spawn_blocking(move || PreparedCredentials::prepare(given)).await??;
    let created = conn
        .transaction::<_, BoxError, _>(async move |conn| {
            diesel::sql_query(format!("SELECT pg_advisory_xact_lock({})", db::STARTUP_LOCK_KEY))
                .execute(conn)
                .await?;
            if crate::organizations::store::count(conn).await? > 0 {
                return Ok(None);
            }
            let created = crate::organizations::service::create(
                conn,
                crate::audit::Actor::System,
                ("default", "Default organisation"),
                &Scope::ALL,
                credentials,
                crate::audit::AuditAction::OrganizationBootstrapped,
            )
            .await?;
            Ok(Some(created))
        })
        .await?;
    Ok(created)
}

/// Used by the CLI (`rapport org create`, `rapport client create`).
pub async fn cli_pool(settings: &Settings) -> Result<DbPool, BoxError> {
    db::ensure_database(&settings.database_url).await?;
    db::run_migrations(&settings.database_url).await?;
    db::create_pool(settings)
}
