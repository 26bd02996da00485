//! The CDS Hooks endpoints: discovery (`GET /cds-services`), the services
//! (`POST /cds-services/{id}`) and feedback (`POST /cds-services/{id}/feedback`). A call is
//! checked in this order: an unknown service is 404, then the client's JWT (401), then the
//! body (400). The facts are read here, the cards decided in `cards` (pure), and the
//! issued cards and the call's audit event committed together before the answer.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use serde_json::{Value, json};
use uuid::Uuid;

use super::cards::{self, AlertFacts, AllianceFacts, Draft, Finish};
use super::model::{CdsCards, CdsDiscovery, CdsFeedbackDoc, CdsRequestDoc, Service};
use super::store::{self, CdsClientRow, IssuedCard, NewFeedback};
use crate::audit::{self, AuditAction, AuditEntry};
use crate::error::{ApiError, ApiResult, Problem};
use crate::ids::OrgId;
use crate::instruments::LoadedInstrument;
use crate::scoring::Kind;
use crate::state::AppState;

/// The services rapport offers (no token needed; an `Authorization` header is ignored).
#[utoipa::path(
    tag = "cds-hooks",
    responses((status = 200, description = "The three services", body = CdsDiscovery)),
    security(())
)]
#[get("")]
pub async fn cds_discovery() -> HttpResponse {
    HttpResponse::Ok().json(CdsDiscovery {
        services: Service::ALL.into_iter().map(Service::describe).collect(),
    })
}

/// The service named in the path (404 when none) and the client calling it, by the JWT in
/// `Authorization` for the exact URL called (`suffix` after the service id).
async fn caller(req: &HttpRequest, state: &AppState, id: &str, suffix: &str) -> ApiResult<(Service, CdsClientRow)> {
    let service = Service::from_id(id).ok_or(ApiError::NotFound)?;
    let token = crate::edge::authenticate::bearer_token(req)
        .map_err(|_| ApiError::Unauthorized(super::trust::REFUSED.into()))?;
    let url = format!("{}/cds-services/{}{suffix}", state.public_url, service.id());
    Ok((service, state.cds.verify(&token, &url).await?))
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest(detail.into())
}

/// What a call asks, read from its body.
struct Call {
    hook_instance: String,
    patient: String,
    user: String,
    encounter: Option<String>,
    context: Value,
}

fn read_call(body: &[u8], service: Service) -> ApiResult<Call> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| bad("the body is not JSON"))?;
    let doc = doc.as_object().ok_or_else(|| bad("the body must be a JSON object"))?;
    match doc.get("hook").and_then(Value::as_str) {
        Some(h) if h == service.hook() => {}
        Some(_) => return Err(bad(format!("`hook` must be `{}` for this service", service.hook()))),
        None => return Err(bad("`hook` is required")),
    }
    let hook_instance = doc
        .get("hookInstance")
        .and_then(Value::as_str)
        .filter(|h| !h.trim().is_empty() && h.len() <= 255)
        .ok_or_else(|| bad("`hookInstance` is required (1 to 255 characters)"))?
        .to_string();
    let context = doc
        .get("context")
        .filter(|c| c.is_object())
        .ok_or_else(|| bad("`context` is required (an object)"))?;
    let text = |name: &str| {
        context
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| bad(format!("`context.{name}` is required")))
    };
    let user = text("userId")?.to_string();
    let patient = crate::refs::Reference::parse(text("patientId")?)
        .map_err(|why| bad(format!("`context.patientId`: {why}")))?
        .into_inner();
    let encounter = context.get("encounterId").and_then(Value::as_str).map(str::to_string);
    Ok(Call {
        hook_instance,
        patient,
        user,
        encounter,
        context: context.clone(),
    })
}

/// Cards go to clinicians only (not to a patient or a proxy in a portal).
fn is_clinician(user: &str) -> bool {
    user.starts_with("Practitioner/") || user.starts_with("PractitionerRole/")
}

/// Instrument versions read once per call.
struct Instruments<'a> {
    state: &'a AppState,
    org: OrgId,
    seen: HashMap<(String, i32), Arc<LoadedInstrument>>,
}

impl Instruments<'_> {
    async fn at(&mut self, conn: &mut AsyncPgConnection, key: &str, version: i32) -> ApiResult<Arc<LoadedInstrument>> {
        if let Some(found) = self.seen.get(&(key.to_string(), version)) {
            return Ok(found.clone());
        }
        let found = crate::instruments::instrument_at(conn, &self.state.builtins, self.org, key, version).await?;
        self.seen.insert((key.to_string(), version), found.clone());
        Ok(found)
    }
}

async fn open_alerts(
    conn: &mut AsyncPgConnection,
    instruments: &mut Instruments<'_>,
    patient: &str,
) -> ApiResult<Vec<AlertFacts>> {
    let rows = crate::alerts::store::open_for_patient(conn, instruments.org, patient).await?;
    let mut facts = Vec::with_capacity(rows.len());
    for row in rows {
        let instrument = instruments
            .at(conn, &row.instrument_key, row.instrument_version)
            .await?;
        facts.push(AlertFacts {
            id: row.id,
            kind: row.kind,
            instrument_title: instrument.version.title.clone(),
            alliance: instrument.definition.kind == Kind::Alliance,
            instrument: row.instrument_key,
            rater: row.rater.as_str().to_string(),
            detail: row.detail,
            created_at: row.created_at,
        });
    }
    Ok(facts)
}

/// The patient's latest alliance series scored in the last 180 days, as the card tells it.
async fn recent_alliance(
    conn: &mut AsyncPgConnection,
    instruments: &mut Instruments<'_>,
    patient: &str,
) -> ApiResult<Option<AllianceFacts>> {
    let since = Utc::now() - chrono::Duration::days(cards::ALLIANCE_RECENT_DAYS);
    let candidates = crate::analytics::store::recent_series(conn, instruments.org, patient, since).await?;
    for series in candidates {
        let instrument = instruments
            .at(conn, &series.instrument_key, series.instrument_version)
            .await?;
        if instrument.definition.kind != Kind::Alliance {
            continue;
        }
        let Some(rater) = crate::scoring::Rater::parse(&series.rater) else {
            continue;
        };
        let query = crate::analytics::model::TrendQuery {
            instrument: series.instrument_key.clone(),
            rater: Some(rater),
            clinician: None,
            episode: None,
            instrument_version: None,
            from: None,
            to: None,
        };
        let (trend, used) =
            crate::analytics::trends::compute(conn, instruments.state, instruments.org, patient.to_string(), &query)
                .await?;
        if trend.points.is_empty() {
            continue;
        }
        return Ok(Some(AllianceFacts {
            instrument: series.instrument_key,
            instrument_title: used.map_or_else(|| instrument.version.title.clone(), |u| u.version.title.clone()),
            rater: series.rater,
            points: trend.points.iter().map(|p| (p.administered_at, p.total)).collect(),
            reliable_change: trend
                .summary
                .reliable_change
                .and_then(|c| serde_json::to_value(c).ok())
                .and_then(|v| v.as_str().map(str::to_string)),
        }));
    }
    Ok(None)
}

/// Call a service: the CDS Hooks request in, `{"cards": [...]}` out.
#[utoipa::path(
    tag = "cds-hooks",
    params(("id" = String, Path, description = "`rapport-alliance`, `rapport-prescribing` or `rapport-prescribing-sign`")),
    request_body = CdsRequestDoc,
    responses(
        (status = 200, description = "The cards (possibly none)", body = CdsCards),
        (status = 400, description = "A wrong `hook` for the service, or a missing `hookInstance`, `context`, `context.userId` or `context.patientId`", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::CdsJwtRefused,
        (status = 404, description = "No such service", body = Problem, content_type = "application/problem+json"),
    ),
    security(("cds_client_jwt" = []))
)]
#[post("/{id}")]
pub async fn call_cds_service(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (service, client) = caller(&req, &state, &id, "").await?;
    let call = read_call(&body, service)?;
    let org = client.org_id;
    let mut conn = crate::db::conn(&state.pool).await?;
    let drafts: Vec<Draft> = if !is_clinician(&call.user) {
        Vec::new()
    } else {
        let mut instruments = Instruments {
            state: &state,
            org,
            seen: HashMap::new(),
        };
        match service {
            Service::Alliance => cards::patient_view(&open_alerts(&mut conn, &mut instruments, &call.patient).await?),
            Service::Prescribing | Service::PrescribingSign => {
                let selected_only = service == Service::Prescribing;
                if cards::orders_include_medication(&call.context, selected_only) {
                    let alerts = open_alerts(&mut conn, &mut instruments, &call.patient).await?;
                    let alliance = recent_alliance(&mut conn, &mut instruments, &call.patient).await?;
                    cards::prescribing(&alerts, alliance.as_ref())
                } else {
                    Vec::new()
                }
            }
        }
    };
    let issued = cards::finish(
        &drafts,
        &Finish {
            public_url: &state.public_url,
            patient: &call.patient,
            link: client.ehr_connection_id.is_some(),
        },
    );
    let kept: Vec<IssuedCard> = issued
        .iter()
        .zip(&drafts)
        .map(|(card, draft)| IssuedCard {
            id: card.uuid,
            alert_ids: draft.alert_ids.clone(),
        })
        .collect();
    let card_ids: Vec<Uuid> = kept.iter().map(|c| c.id).collect();
    let (service_id, patient) = (service.id(), call.patient.clone());
    conn.transaction::<_, ApiError, _>(async |conn| {
        store::keep_cards(conn, org, service_id, &patient, &kept).await?;
        let secret = crate::pseudonyms::pseudonym_secret(conn, org).await?;
        let actor = format!("cds:{}:{}", client.id, call.user);
        audit::record(
            conn,
            AuditEntry {
                org,
                actor: &actor,
                action: AuditAction::CdsCall,
                resource_type: "cds_service",
                resource_id: Some(service_id.to_string()),
                detail: json!({
                    "service": service_id,
                    "hookInstance": call.hook_instance,
                    "patient": crate::pseudonyms::pseudonym(&secret, &patient),
                    "cards": card_ids.len(),
                    "card_ids": card_ids,
                    "issuer": client.issuer,
                    "user": call.user,
                    "encounter": call.encounter,
                }),
            },
        )
        .await?;
        Ok(())
    })
    .await?;
    state
        .metrics
        .cds_call(service_id, issued.iter().map(|c| c.indicator.as_str()));
    Ok(HttpResponse::Ok().json(CdsCards { cards: issued }))
}

/// One feedback item, or None when it lacks `card`, `outcome` or `outcomeTimestamp` (or
/// they are not a card id, `accepted`/`overridden` and an RFC 3339 time).
fn feedback_item(item: &Value) -> Option<NewFeedback> {
    let card = Uuid::parse_str(item.get("card")?.as_str()?).ok()?;
    let outcome = item.get("outcome")?.as_str()?;
    if outcome != "accepted" && outcome != "overridden" {
        return None;
    }
    let at = item.get("outcomeTimestamp")?.as_str()?;
    let outcome_timestamp = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
    let override_reason = item
        .get("overrideReason")
        .filter(|r| r.is_object() && r.to_string().len() <= 4_096)
        .cloned();
    Some(NewFeedback {
        card,
        outcome: outcome.to_string(),
        outcome_timestamp,
        override_reason,
    })
}

/// What the clinician did with rapport's cards. Items naming a card rapport did not issue
/// to this organisation for this service (or more than 90 days ago), and items without
/// `card`, `outcome` or `outcomeTimestamp`, are ignored; each kept item shows on the alerts
/// its card carried (`GET /v1/alerts/{id}`, `cds_feedback`).
#[utoipa::path(
    tag = "cds-hooks",
    params(("id" = String, Path, description = "The service that issued the cards")),
    request_body = CdsFeedbackDoc,
    responses(
        (status = 200, description = "Received (`{}`)", body = Object),
        (status = 400, description = "The body is not `{\"feedback\": [...]}`", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::CdsJwtRefused,
        (status = 404, description = "No such service", body = Problem, content_type = "application/problem+json"),
    ),
    security(("cds_client_jwt" = []))
)]
#[post("/{id}/feedback")]
pub async fn cds_feedback(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (service, client) = caller(&req, &state, &id, "/feedback").await?;
    let doc: Value = serde_json::from_slice(&body).map_err(|_| bad("the body is not JSON"))?;
    let items = doc
        .as_object()
        .and_then(|o| o.get("feedback"))
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the body must be {\"feedback\": [...]}"))?;
    let parsed: Vec<NewFeedback> = items.iter().filter_map(feedback_item).collect();
    let org = client.org_id;
    let service_id = service.id();
    let mut conn = crate::db::conn(&state.pool).await?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        let kept = store::keep_feedback(conn, org, service_id, &parsed).await?;
        let actor = format!("cds:{}", client.id);
        audit::record(
            conn,
            AuditEntry {
                org,
                actor: &actor,
                action: AuditAction::CdsFeedback,
                resource_type: "cds_service",
                resource_id: Some(service_id.to_string()),
                detail: json!({
                    "service": service_id,
                    "items": items.len(),
                    "kept": kept.len(),
                    "card_ids": kept,
                    "issuer": client.issuer,
                }),
            },
        )
        .await?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({})))
}
