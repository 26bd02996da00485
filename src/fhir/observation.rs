//! Score Observations of one patient, searched with FHIR's parameters.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, web};
use serde_json::json;

use super::observation_search::ObservationSearch;
use super::{FhirResult, authorised, base_url, fail, fhir_json, resources};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::error::ApiError;
use crate::responses::model::Administration;
use crate::responses::store;
use crate::state::AppState;

/// Score Observations of one patient, as a searchset Bundle with paging links.
/// Parameters: `subject=Patient/{id}` (required), `code` (`{key}-total`), `date` with
/// `ge`/`gt`/`le`/`lt`/`eq` prefixes (repeatable), `derived-from=QuestionnaireResponse/{id}`,
/// `_count` (1-500, default 50), `_sort=date|-date`, `_offset` (from `next` links).
#[utoipa::path(
    tag = "fhir",
    params(
        ("subject" = String, Query, description = "Patient/{id}"),
        ("code" = Option<String>, Query, description = "`{key}-total`, optionally `system|code`"),
        ("date" = Option<String>, Query, description = "e.g. ge2026-01-01"),
        ("derived-from" = Option<String>, Query, description = "QuestionnaireResponse/{id}"),
        ("_count" = Option<i64>, Query, description = "Page size, 1-500"),
        ("_sort" = Option<String>, Query, description = "date or -date"),
        ("_offset" = Option<i64>, Query, description = "Paging offset (from `next` links)"),
    ),
    responses(
        (status = 200, description = "searchset Bundle of Observations", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 403, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/Observation")]
pub async fn search_observations(
    req: HttpRequest,
    principal: Result<Principal, ApiError>,
    state: web::Data<AppState>,
) -> FhirResult {
    let principal = authorised(principal, Some(Scope::ResponsesRead))?;
    let base = base_url(&req);
    let mut search = ObservationSearch::parse(req.query_string(), &resources::code_system(&base)).map_err(fail)?;
    // A launch token searches its patient only: a subject naming another finds nothing.
    if let Some(bound) = &principal.patient
        && search.scored.patients.iter().any(|p| p != bound)
    {
        search.no_match = true;
    }
    let mut conn = state.read_conn().await.map_err(fail)?;
    if search.count_only {
        let total = if search.no_match {
            0
        } else {
            store::count_scored(&mut conn, principal.org, &search.scored)
                .await
                .map_err(|e| fail(e.into()))?
        };
        audit::record_read(
            &state.writer,
            &principal,
            crate::audit::AuditAction::ObservationsCounted,
            "response",
            None,
            json!({"via": "fhir"}),
        )
        .await
        .map_err(fail)?;
        let self_url = format!("{base}{}", req.uri());
        return Ok(fhir_json(StatusCode::OK, &resources::count_bundle(&self_url, total)));
    }
    let mut rows = if search.no_match {
        Vec::new()
    } else {
        store::search_scored(&mut conn, principal.org, &search.scored)
            .await
            .map_err(|e| fail(e.into()))?
    };
    let limit = search.scored.limit;
    let next = (rows.len() as i64 > limit).then(|| {
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        format!("{base}/fhir/r4/Observation?{}", search.next_page_query())
    });
    let mut titles: HashMap<(String, i32), String> = HashMap::new();
    let mut entries = Vec::new();
    for row in rows {
        let a = Administration::from(row);
        let key = (a.instrument.clone(), a.instrument_version);
        if !titles.contains_key(&key) {
            let title = super::instrument_title(
                &mut conn,
                &state.builtins,
                principal.org,
                &a.instrument,
                a.instrument_version,
            )
            .await;
            titles.insert(key.clone(), title);
        }
        let title = titles.get(&key).map_or(a.instrument.as_str(), String::as_str);
        if let Some(obs) = resources::observation(&base, &a, title) {
            entries.push((format!("{base}/fhir/r4/Observation/{}", a.id), obs));
        }
    }
    // One read event per patient searched (a search of several is several reads), naming
    // each by its pseudonym, never its reference.
    drop(conn);
    // The secret may be created on first use: the primary, never the replica.
    let mut primary = crate::db::conn(&state.pool).await.map_err(fail)?;
    let secret = crate::pseudonyms::pseudonym_secret(&mut primary, principal.org)
        .await
        .map_err(|e| fail(e.into()))?;
    drop(primary);
    for patient in &search.scored.patients {
        audit::record_read(
            &state.writer,
            &principal,
            crate::audit::AuditAction::ObservationsSearched,
            "response",
            None,
            json!({"via": "fhir", "patient": crate::pseudonyms::pseudonym(&secret, patient)}),
        )
        .await
        .map_err(fail)?;
    }
    let self_url = format!("{base}{}", req.uri());
    Ok(fhir_json(StatusCode::OK, &resources::bundle(&self_url, next, entries)))
}

/// One score Observation (its id is the scored response's): every `fullUrl` of a search
/// resolves here. A response without a score has no Observation (404).
#[utoipa::path(
    tag = "fhir",
    params(("id" = String, Path, description = "The Observation id (the scored response's id)")),
    responses(
        (status = 200, description = "The Observation", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 403, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "OperationOutcome: no such Observation in this organisation", body = Object, content_type = "application/fhir+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/Observation/{id}")]
pub async fn read_observation(
    req: HttpRequest,
    principal: Result<Principal, ApiError>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> FhirResult {
    let principal = authorised(principal, Some(Scope::ResponsesRead))?;
    let mut conn = state.read_conn().await.map_err(fail)?;
    let a = super::stored_response(&mut conn, &principal, &id).await?;
    let title = super::instrument_title(
        &mut conn,
        &state.builtins,
        principal.org,
        &a.instrument,
        a.instrument_version,
    )
    .await;
    let observation = resources::observation(&base_url(&req), &a, &title).ok_or_else(|| fail(ApiError::NotFound))?;
    audit::record_read(
        &state.writer,
        &principal,
        crate::audit::AuditAction::ObservationRead,
        "response",
        Some(a.id.to_string()),
        json!({"via": "fhir"}),
    )
    .await
    .map_err(fail)?;
    Ok(fhir_json(StatusCode::OK, &observation))
}
