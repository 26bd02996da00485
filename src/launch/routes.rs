//! The EHR launch: `GET /launch` (the EHR opens it with `iss` and `launch`), `GET
//! /launch/callback` (the EHR's authorization server comes back with a code), the
//! connection's public key at `GET /launch/jwks/{id}`, and `POST /v1/launch/session`, where
//! the console exchanges the one-time code for a token bound to the launched patient.

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::{LaunchSession, LaunchSessionRequest};
use super::pages::{redirect, refusal};
use super::store::{self, CodeRow, ConnectionRow, StateRow};
use crate::audit::{self, AuditAction, AuditEntry};
use crate::auth::secrets::generate_secret;
use crate::auth::token::LaunchBinding;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::ApiJson;
use crate::ids::OrgId;
use crate::state::AppState;

/// A pending launch lives this long (and so does its cookie).
const STATE_SECS: i64 = 600;
/// The console has this long to exchange its code.
const CODE_SECS: i64 = 60;
/// The longest a launch token lives (never longer than the EHR's own token).
const MAX_TOKEN_SECS: i64 = 3_600;
const COOKIE_PREFIX: &str = "rapport_launch_";
const SCOPE: &str = "launch openid fhirUser";
const NEW_WINDOW: &str = "Open rapport from the EHR again; if this keeps happening, your browser does not send \
    rapport's cookie inside the EHR's frame: open the app in a new window instead.";

fn digest(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// The query's parameters (the last of a repeated one counts).
fn params(req: &HttpRequest) -> std::collections::HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn cookie_name(state: &str) -> String {
    format!("{COOKIE_PREFIX}{}", state.chars().take(16).collect::<String>())
}

/// The browser's cookie for this state: `{connection id}.{browser secret}`.
fn browser_cookie(req: &HttpRequest, state: &str) -> Option<(Uuid, String)> {
    let name = cookie_name(state);
    let raw = req.headers().get_all(header::COOKIE).filter_map(|v| v.to_str().ok());
    for pair in raw.flat_map(|v| v.split(';')) {
        let Some((k, v)) = pair.trim().split_once('=') else {
            continue;
        };
        if k == name
            && let Some((connection, secret)) = v.split_once('.')
            && let Ok(connection) = Uuid::parse_str(connection)
        {
            return Some((connection, secret.to_string()));
        }
    }
    None
}

fn bad_launch(what: &str, frame_origins: &[String]) -> HttpResponse {
    refusal(
        StatusCode::BAD_REQUEST,
        "The launch from the EHR failed",
        what,
        "Nothing was granted. Open rapport from the EHR again, or ask the EHR's administrator.",
        frame_origins,
    )
}

fn server_trouble(why: &str) -> HttpResponse {
    log::error!(target: "rapport::launch", "launch failed inside rapport: {why}");
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "rapport could not finish the launch",
        "rapport's own storage did not answer.",
        "Try again in a moment.",
        &[],
    )
}

/// The EHR opens rapport: `iss` (its FHIR base URL) names the connection; rapport reads the
/// EHR's smart-configuration and sends the browser to its authorization endpoint with PKCE
/// and a state bound to this browser by a cookie.
#[get("/launch")]
pub async fn launch(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let query = params(&req);
    let Some(iss) = query
        .get("iss")
        .map(|i| i.trim().trim_end_matches('/'))
        .filter(|i| !i.is_empty())
    else {
        return bad_launch("The EHR did not say who it is (no `iss` parameter).", &[]);
    };
    let Some(launch) = query.get("launch").filter(|l| !l.is_empty()) else {
        return bad_launch(
            "The EHR sent no `launch` parameter (rapport is opened by an EHR launch).",
            &[],
        );
    };
    let mut conn = match crate::db::conn(&state.pool).await {
        Ok(conn) => conn,
        Err(e) => return server_trouble(&e.to_string()),
    };
    let connection = match store::find_by_issuer(&mut conn, iss).await {
        Ok(Some(connection)) => connection,
        Ok(None) => {
            return bad_launch(
                "No organisation in rapport has an EHR connection for this EHR (its `iss`). \
                 An administrator registers it at /v1/ehr-connections.",
                &[],
            );
        }
        Err(e) => return server_trouble(&e.to_string()),
    };
    let frames = &connection.frame_origins;
    let config = match state.ehr.smart_configuration(&connection.issuer).await {
        Ok(config) => config,
        Err(why) => {
            return refusal(
                StatusCode::BAD_GATEWAY,
                "The EHR's SMART configuration is not usable",
                &why,
                "Nothing was granted. Ask the EHR's administrator.",
                frames,
            );
        }
    };
    let (Ok(mut authorize), Some(oidc_issuer)) =
        (url::Url::parse(&config.authorization_endpoint), config.issuer.clone())
    else {
        return refusal(
            StatusCode::BAD_GATEWAY,
            "The EHR's SMART configuration is not usable",
            "Its authorization endpoint is not a URL.",
            "Ask the EHR's administrator.",
            frames,
        );
    };
    let (state_value, verifier, browser) = (generate_secret(), generate_secret(), generate_secret());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let row = StateRow {
        org_id: connection.org_id,
        state_hash: digest(&state_value),
        connection_id: connection.id,
        browser_hash: digest(&browser),
        code_verifier: verifier,
        token_endpoint: config.token_endpoint.clone(),
        oidc_issuer,
        expires_at: Utc::now() + chrono::Duration::seconds(STATE_SECS),
    };
    if let Err(e) = store::save_state(&mut conn, &row).await {
        return server_trouble(&e.to_string());
    }
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &connection.client_id)
        .append_pair("redirect_uri", &callback_url(&state))
        .append_pair("launch", launch)
        .append_pair("scope", SCOPE)
        .append_pair("state", &state_value)
        .append_pair("aud", &connection.issuer)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut answer = redirect(authorize.as_str(), frames);
    let cookie = format!(
        "{}={}.{}; Path=/launch; Max-Age={STATE_SECS}; Secure; HttpOnly; SameSite=None; Partitioned",
        cookie_name(&state_value),
        connection.id,
        browser
    );
    if let Ok(value) = header::HeaderValue::from_str(&cookie) {
        answer.headers_mut().append(header::SET_COOKIE, value);
    }
    answer
}

fn callback_url(state: &AppState) -> String {
    format!("{}/launch/callback", state.public_url.trim_end_matches('/'))
}

/// The EHR's authorization server sends the browser back: rapport checks the state against
/// this browser's cookie, exchanges the code, verifies the id_token and hands the console a
/// one-time code.
#[get("/launch/callback")]
pub async fn callback(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let query = params(&req);
    let Some(state_value) = query.get("state").filter(|s| !s.is_empty()) else {
        return bad_launch("The authorization server's answer carries no `state`.", &[]);
    };
    let Some((connection_id, browser)) = browser_cookie(&req, state_value) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "This launch was not started in this browser",
            "rapport's launch cookie is missing: the launch was started in another browser or \
             window, it is older than 10 minutes, or the browser did not send the cookie.",
            NEW_WINDOW,
            &[],
        );
    };
    let mut conn = match crate::db::conn(&state.pool).await {
        Ok(conn) => conn,
        Err(e) => return server_trouble(&e.to_string()),
    };
    let connection = match store::find_by_id(&mut conn, connection_id).await {
        Ok(Some(connection)) => connection,
        Ok(None) => return bad_launch("The EHR connection of this launch no longer exists.", &[]),
        Err(e) => return server_trouble(&e.to_string()),
    };
    let frames = connection.frame_origins.clone();
    let pending = match store::take_state(&mut conn, connection.org_id, &digest(state_value), &digest(&browser)).await {
        Ok(Some(pending)) => pending,
        Ok(None) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "This launch cannot be finished",
                "Its state is unknown to this browser, was already used, or is older than 10 minutes.",
                NEW_WINDOW,
                &frames,
            );
        }
        Err(e) => return server_trouble(&e.to_string()),
    };
    if let Some(error) = query.get("error") {
        let description = query
            .get("error_description")
            .map(String::as_str)
            .unwrap_or("no description");
        return bad_launch(
            &format!("The EHR's authorization server refused the launch: {error} ({description})."),
            &frames,
        );
    }
    if let Some(iss) = query.get("iss")
        && *iss != pending.oidc_issuer
    {
        return bad_launch(
            "The authorization server's answer names another issuer (`iss`) than the EHR's.",
            &frames,
        );
    }
    let Some(code) = query.get("code").filter(|c| !c.is_empty()) else {
        return bad_launch("The authorization server's answer carries no `code`.", &frames);
    };
    let exchanged = match state
        .ehr
        .exchange(
            &connection,
            &pending.token_endpoint,
            &pending.oidc_issuer,
            code,
            &callback_url(&state),
            &pending.code_verifier,
        )
        .await
    {
        Ok(exchanged) => exchanged,
        Err(why) => return bad_launch(&format!("{}.", why.trim_end_matches('.')), &frames),
    };
    match finish(&state, &mut conn, &connection, exchanged).await {
        Ok(location) => redirect(&location, &frames),
        Err(e) => server_trouble(&e.to_string()),
    }
}

/// What a CDS card's link carries in `appContext`.
#[derive(serde::Deserialize)]
struct CardContext {
    patient: Option<String>,
    instrument: Option<String>,
    alert: Option<Uuid>,
}

/// The card's alert and instrument when the context names the launched patient's alert in
/// this organisation; `Err(())` when a context was given and does not.
async fn card_context(
    conn: &mut diesel_async::AsyncPgConnection,
    org: OrgId,
    patient: &str,
    given: Option<serde_json::Value>,
) -> ApiResult<Result<Option<(Uuid, Option<String>)>, ()>> {
    let Some(given) = given else { return Ok(Ok(None)) };
    // SMART sends appContext as a string; a JSON object is read as well.
    let parsed: Option<CardContext> = match given {
        serde_json::Value::String(text) => serde_json::from_str(&text).ok(),
        other => serde_json::from_value(other).ok(),
    };
    let Some(context) = parsed else { return Ok(Err(())) };
    let (Some(alert_id), Some(named)) = (context.alert, context.patient) else {
        return Ok(Err(()));
    };
    if crate::refs::nfc(&named) != patient {
        return Ok(Err(()));
    }
    let alert = crate::alerts::store::find(conn, org, crate::ids::AlertId(alert_id)).await?;
    Ok(match alert {
        Some(alert) if alert.patient == patient => Ok(Some((alert.id, context.instrument))),
        _ => Err(()),
    })
}

/// Keeps the one-time code for the console (with the card's alert when it is this
/// patient's), audits the launch, and answers where the console opens.
async fn finish(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    connection: &ConnectionRow,
    exchanged: super::ehr::Exchanged,
) -> ApiResult<String> {
    let org = connection.org_id;
    let patient = crate::refs::nfc(exchanged.patient.trim());
    let context = card_context(conn, org, &patient, exchanged.app_context).await?;
    let token_seconds = exchanged
        .expires_in
        .filter(|s| *s > 0)
        .map_or(MAX_TOKEN_SECS, |s| s.min(MAX_TOKEN_SECS));
    let code = format!("{}.{}", connection.id.simple(), generate_secret());
    let (alert_id, instrument) = context.clone().ok().flatten().unzip();
    let row = CodeRow {
        org_id: org,
        code_hash: digest(&code),
        connection_id: connection.id,
        patient: patient.clone(),
        fhir_user: exchanged.fhir_user.clone(),
        user_name: exchanged.name,
        token_seconds,
        alert_id,
        instrument: instrument.flatten(),
        expires_at: Utc::now() + chrono::Duration::seconds(CODE_SECS),
    };
    let actor = super::service::launch_actor(connection.id, &exchanged.fhir_user);
    let secret = crate::pseudonyms::pseudonym_secret(conn, org).await?;
    let pseudonym = crate::pseudonyms::pseudonym(&secret, &patient);
    use diesel_async::AsyncConnection as _;
    conn.transaction::<_, ApiError, _>(async |conn| {
        store::save_code(conn, &row).await?;
        audit::record(
            conn,
            AuditEntry {
                org,
                actor: actor.as_str(),
                action: AuditAction::LaunchCompleted,
                resource_type: "ehr_connection",
                resource_id: Some(connection.id.to_string()),
                detail: json!({"patient": pseudonym, "alert": row.alert_id, "token_seconds": token_seconds}),
            },
        )
        .await?;
        if context.is_err() {
            audit::record(
                conn,
                AuditEntry {
                    org,
                    actor: actor.as_str(),
                    action: AuditAction::LaunchContextIgnored,
                    resource_type: "ehr_connection",
                    resource_id: Some(connection.id.to_string()),
                    detail: json!({"patient": pseudonym, "why": "the appContext does not name an alert of the launched patient"}),
                },
            )
            .await?;
        }
        Ok(())
    })
    .await?;
    Ok(format!(
        "{}/console/launch/{}/#/launch/{}",
        state.public_url.trim_end_matches('/'),
        connection.id,
        code
    ))
}

/// The public key of a `private_key_jwt` connection, for the EHR to verify rapport's client
/// assertions (no token needed).
#[utoipa::path(
    tag = "smart-launch",
    params(("id" = Uuid, Path, description = "The EHR connection's id")),
    responses(
        (status = 200, description = "A JWK set with the connection's ES384 public key", body = Object),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No `private_key_jwt` connection has this id", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[get("/launch/jwks/{id}")]
pub async fn connection_jwks(state: web::Data<AppState>, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let mut conn = crate::db::conn(&state.pool).await?;
    let connection = store::find_by_id(&mut conn, *id).await?.ok_or(ApiError::NotFound)?;
    let key = connection.public_jwk.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "max-age=300"))
        .json(json!({"keys": [key]})))
}

/// Exchange the one-time code of a finished launch (it works once, within 60 s) for a
/// rapport token bound to the organisation and the launched patient: it reads that
/// patient's trends, chart, responses, alerts and FHIR resources, acknowledges that
/// patient's alerts and reads instruments; every other operation is 403 and another
/// patient's data 404. It lives at most an hour, never longer than the EHR's token, and
/// stops within 60 s when its connection is deleted. No token needed: the code is the
/// credential.
#[utoipa::path(
    tag = "smart-launch",
    request_body = LaunchSessionRequest,
    responses(
        (status = 200, description = "The launch session", body = LaunchSession),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::NotJson,
        (status = 422, description = "The code is unknown, already used or expired", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/launch/session")]
pub async fn launch_session(
    state: web::Data<AppState>,
    body: ApiJson<LaunchSessionRequest>,
) -> ApiResult<HttpResponse> {
    let refused = || ApiError::validation("/code", "is unknown, already used or expired");
    let code = body.0.code;
    let connection_id = code
        .split_once('.')
        .and_then(|(id, _)| Uuid::parse_str(id).ok())
        .ok_or_else(refused)?;
    let mut conn = crate::db::conn(&state.pool).await?;
    let connection = store::find_by_id(&mut conn, connection_id).await?.ok_or_else(refused)?;
    let org = connection.org_id;
    let row = store::take_code(&mut conn, org, &digest(&code))
        .await?
        .ok_or_else(refused)?;
    let actor = super::service::launch_actor(connection.id, &row.fhir_user);
    let binding = LaunchBinding {
        connection: connection.id,
        patient: &row.patient,
    };
    let seconds = u64::try_from(row.token_seconds).unwrap_or(0);
    let access_token = state
        .jwt
        .issue_launch(&actor, org, &binding, Duration::from_secs(seconds))
        .map_err(ApiError::internal)?;
    audit::record(
        &mut conn,
        AuditEntry {
            org,
            actor: actor.as_str(),
            action: AuditAction::LaunchSessionStarted,
            resource_type: "ehr_connection",
            resource_id: Some(connection.id.to_string()),
            detail: json!({"expires_in": row.token_seconds}),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(LaunchSession {
        access_token,
        token_type: "Bearer",
        expires_in: row.token_seconds,
        scope: "responses:read",
        user: row.user_name.clone().unwrap_or_else(|| row.fhir_user.clone()),
        fhir_user: row.fhir_user,
        patient: row.patient,
        alert: row.alert_id,
        instrument: row.instrument,
    }))
}

/// Registers the launch pages (outside the OpenAPI document: they are browser pages).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(launch).service(callback);
}
