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
    let search = ObservationSearch::parse(req.query_string()).map_err(fail)?;
    let base = base_url(&req);
    let mut conn = crate::db::conn(&state.pool).await.map_err(fail)?;
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
        let title = titles.get(&key).map_or(a.instrument.as_str(), String::as_str);
        if let Some(obs) = resources::observation(&base, &a, title) {
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

/// The parameters of an Observation search, parsed: what to select, and whether a
/// parameter already rules out every row (a code that is no score, an id that is no UUID).
#[derive(Debug)]
pub struct ObservationSearch {
    pub scored: store::ScoredSearch,
    pub no_match: bool,
    /// The parameters as given, for the `next` link.
    params: Vec<(String, String)>,
}

impl ObservationSearch {
    /// Parses a query string: `subject=Patient/{id}` (required), `code` (`{key}-total`),
    /// `date` with `ge`/`gt`/`le`/`lt`/`eq` prefixes (repeatable), `derived-from`, `_count`,
    /// `_sort`, `_offset`; anything else is a 400 naming the parameter.
    pub fn parse(query: &str) -> Result<ObservationSearch, ApiError> {
        let bad = |m: &str| ApiError::BadRequest(m.to_string());
        let params: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|_| bad("malformed query string"))?;
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
                "date" => apply_date(&mut search, value)?,
                "_count" => search.limit = crate::pagination::limit(Some(value))?,
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
        Ok(ObservationSearch {
            scored: search,
            no_match,
            params,
        })
    }

    /// The query of the next page: the same parameters, `_offset` moved on by one page.
    pub fn next_page_query(&self) -> String {
        let mut kept: Vec<(String, String)> = self.params.iter().filter(|(n, _)| n != "_offset").cloned().collect();
        kept.push(("_offset".into(), (self.scored.offset + self.scored.limit).to_string()));
        serde_urlencoded::to_string(&kept).unwrap_or_default()
    }
}

/// One `date` parameter: a prefix (`eq` when none) and a date or date-time.
fn apply_date(search: &mut store::ScoredSearch, value: &str) -> Result<(), ApiError> {
    let (prefix, rest) = match (value.get(..2), value.get(2..)) {
        (Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")), Some(rest)) => (p, rest),
        _ => ("eq", value),
    };
    let (start, end) = parse_date(rest).ok_or_else(|| {
        ApiError::BadRequest("`date` must be a date or date-time with an optional ge/gt/le/lt/eq prefix".into())
    })?;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> ObservationSearch {
        ObservationSearch::parse(q).unwrap()
    }

    #[test]
    fn subject_is_required() {
        assert!(matches!(
            ObservationSearch::parse("code=srs-total"),
            Err(ApiError::BadRequest(_))
        ));
        assert_eq!(parse("subject=Patient/p-1").scored.patient, "p-1");
    }

    #[test]
    fn code_names_the_instrument_with_or_without_a_system() {
        assert_eq!(
            parse("subject=Patient/p&code=srs-total").scored.instrument.as_deref(),
            Some("srs")
        );
        assert_eq!(
            parse("subject=Patient/p&code=http://x%7Cwai-sr-total")
                .scored
                .instrument
                .as_deref(),
            Some("wai-sr")
        );
        assert!(parse("subject=Patient/p&code=12345-6").no_match);
    }

    #[test]
    fn date_prefixes_bound_the_range() {
        let s = parse("subject=Patient/p&date=ge2026-01-01&date=lt2026-02-01").scored;
        assert_eq!(s.from.map(|t| t.to_rfc3339()), Some("2026-01-01T00:00:00+00:00".into()));
        assert!(s.from_inclusive);
        assert_eq!(s.to.map(|t| t.to_rfc3339()), Some("2026-02-01T00:00:00+00:00".into()));
        assert!(!s.to_inclusive);
        let day = parse("subject=Patient/p&date=2026-03-04").scored;
        assert_eq!(
            day.to.map(|t| t.to_rfc3339()),
            Some("2026-03-04T23:59:59.999999+00:00".into())
        );
        assert!(ObservationSearch::parse("subject=Patient/p&date=yesterday").is_err());
    }

    #[test]
    fn paging_and_sorting() {
        let s = parse("subject=Patient/p&_count=20&_offset=40&_sort=-date");
        assert_eq!((s.scored.limit, s.scored.offset, s.scored.descending), (20, 40, true));
        assert_eq!(
            s.next_page_query(),
            "subject=Patient%2Fp&_count=20&_sort=-date&_offset=60"
        );
        assert!(ObservationSearch::parse("subject=Patient/p&_count=0").is_err());
        assert!(ObservationSearch::parse("subject=Patient/p&_sort=name").is_err());
    }

    #[test]
    fn unknown_parameters_are_refused() {
        match ObservationSearch::parse("subject=Patient/p&status=final") {
            Err(ApiError::BadRequest(m)) => assert!(m.contains("`status`")),
            other => panic!("expected 400, got {other:?}"),
        }
    }
}
