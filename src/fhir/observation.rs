//! Score Observations of one patient, searched with FHIR's parameters.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{FhirResult, authorised, base_url, fail, fhir_json, resources};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::error::ApiError;
use crate::responses::model::Administration;
use crate::responses::store;
use crate::state::AppState;

fn parse_date(value: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        let t = t.with_timezone(&Utc);
        return Some((t, t));
    }
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
    let start = day.and_hms_opt(0, 0, 0)?.and_utc();
    Some((
        start,
        start + chrono::Duration::days(1) - chrono::Duration::microseconds(1),
    ))
}

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
    let bad = |m: &str| fail(ApiError::BadRequest(m.to_string()));
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).map_err(|_| bad("malformed query string"))?;
    let mut search = store::ScoredSearch {
        limit: 50,
        ..Default::default()
    };
    let mut subject = None;
    let mut no_match = false;
    for (name, value) in &params {
        match name.as_str() {
            "subject" => {
                subject = Some(value.strip_prefix("Patient/").unwrap_or(value).to_string());
            }
            "code" => {
                let code = value.rsplit('|').next().unwrap_or(value);
                match code.strip_suffix("-total") {
                    Some(key) => search.instrument = Some(key.to_string()),
                    None => no_match = true,
                }
            }
            "derived-from" => {
                let id = value.strip_prefix("QuestionnaireResponse/").unwrap_or(value);
                match Uuid::parse_str(id) {
                    Ok(id) => search.id = Some(id),
                    Err(_) => no_match = true,
                }
            }
            "date" => {
                let (prefix, rest) = match value.get(..2) {
                    Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &value[2..]),
                    _ => ("eq", value.as_str()),
                };
                let (start, end) = parse_date(rest)
                    .ok_or_else(|| bad("`date` must be a date or date-time with an optional ge/gt/le/lt/eq prefix"))?;
                match prefix {
                    "ge" => (search.from, search.from_inclusive) = (Some(start), true),
                    "gt" => (search.from, search.from_inclusive) = (Some(end), false),
                    "le" => (search.to, search.to_inclusive) = (Some(end), true),
                    "lt" => (search.to, search.to_inclusive) = (Some(start), false),
                    _ => {
                        (search.from, search.from_inclusive) = (Some(start), true);
                        (search.to, search.to_inclusive) = (Some(end), true);
                    }
                }
            }
            "_count" => {
                search.limit = crate::pagination::limit(Some(value)).map_err(fail)?;
            }
            "_offset" => {
                search.offset = value
                    .parse::<i64>()
                    .ok()
                    .filter(|o| (0..=10_000_000).contains(o))
                    .ok_or_else(|| bad("`_offset` must be a whole number from 0"))?;
            }
            "_sort" => match value.as_str() {
                "date" => search.descending = false,
                "-date" => search.descending = true,
                _ => return Err(bad("`_sort` must be date or -date")),
            },
            "_format" => {}
            other => return Err(bad(&format!("unsupported search parameter `{other}`"))),
        }
    }
    search.patient = subject.ok_or_else(|| bad("`subject=Patient/{id}` is required"))?;
    let base = base_url(&req);
    let mut conn = crate::db::conn(&state.pool).await.map_err(fail)?;
    let mut rows = if no_match {
        Vec::new()
    } else {
        store::search_scored(&mut conn, principal.org, &search)
            .await
            .map_err(|e| fail(e.into()))?
    };
    let next = (rows.len() as i64 > search.limit).then(|| {
        rows.truncate(search.limit as usize);
        let mut kept: Vec<(String, String)> = params.iter().filter(|(n, _)| n != "_offset").cloned().collect();
        kept.push(("_offset".into(), (search.offset + search.limit).to_string()));
        format!(
            "{base}/fhir/r4/Observation?{}",
            serde_urlencoded::to_string(&kept).unwrap_or_default()
        )
    });
    let mut titles: HashMap<(String, i32), String> = HashMap::new();
    let mut entries = Vec::new();
    for row in rows {
        let a = Administration::from(row);
        let key = (a.instrument.clone(), a.instrument_version);
        if !titles.contains_key(&key) {
            let title = crate::analytics::instrument_at(
                &mut conn,
                &state.builtins,
                principal.org,
                &a.instrument,
                a.instrument_version,
            )
            .await
            .map(|i| i.version.title.clone())
            .unwrap_or_else(|_| a.instrument.clone());
            titles.insert(key.clone(), title);
        }
        if let Some(obs) = resources::observation(&base, &a, &titles[&key]) {
            entries.push((format!("{base}/fhir/r4/Observation/{}", a.id), obs));
        }
    }
    audit::record_read(
        &mut conn,
        &principal,
        "observations.searched",
        "response",
        None,
        json!({"via": "fhir"}),
    )
    .await
    .map_err(|e| fail(e.into()))?;
    let self_url = format!("{base}{}", req.uri());
    Ok(fhir_json(StatusCode::OK, &resources::bundle(&self_url, next, entries)))
}
