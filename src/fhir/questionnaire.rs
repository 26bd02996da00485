//! Questionnaires: an instrument version as FHIR sees it, read by key or searched by
//! canonical URL and version.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, web};

use super::{FhirResult, authorised, base_url, fail, fhir_json, resources};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::instruments::Wanted;
use crate::state::AppState;

/// The latest published version of an instrument as a Questionnaire.
#[utoipa::path(
    tag = "fhir",
    params(("key" = String, Path, description = "Instrument key")),
    responses(
        (status = 200, description = "Questionnaire", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
    ),
    security(("bearer" = []))
)]
#[get("/Questionnaire/{key}")]
pub async fn read_questionnaire(
    req: HttpRequest,
    principal: Result<Principal, ApiError>,
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> FhirResult {
    let principal = authorised(principal, None)?;
    let mut conn = crate::db::conn(&state.pool).await.map_err(fail)?;
    let instrument = crate::instruments::find(&mut conn, &state.builtins, principal.org, &key, Wanted::LatestPublished)
        .await
        .map_err(|e| fail(e.in_path()))?;
    Ok(fhir_json(
        StatusCode::OK,
        &resources::questionnaire(&base_url(&req), &instrument),
    ))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuestionnaireSearch {
    /// Canonical URL (`{base}/fhir/r4/Questionnaire/{key}`).
    pub url: Option<String>,
    pub version: Option<String>,
}

pub(super) fn key_from_canonical(url: &str) -> Option<&str> {
    let (_, key) = url.rsplit_once("/Questionnaire/")?;
    Some(key.split(['|', '/', '?']).next().unwrap_or(key)).filter(|k| !k.is_empty())
}

/// Questionnaires by canonical URL (and version), as a searchset Bundle.
#[utoipa::path(
    tag = "fhir",
    params(QuestionnaireSearch),
    responses(
        (status = 200, description = "searchset Bundle", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
    ),
    security(("bearer" = []))
)]
#[get("/Questionnaire")]
pub async fn search_questionnaires(
    req: HttpRequest,
    principal: Result<Principal, ApiError>,
    state: web::Data<AppState>,
    query: Result<crate::extract::ApiQuery<QuestionnaireSearch>, actix_web::Error>,
) -> FhirResult {
    let principal = authorised(principal, None)?;
    let query = query.map_err(|e| fail(ApiError::BadRequest(e.to_string())))?;
    let base = base_url(&req);
    let mut conn = crate::db::conn(&state.pool).await.map_err(fail)?;
    let rows = match &query.url {
        Some(url) => match key_from_canonical(url) {
            Some(key) => crate::instruments::store::versions_of(&mut conn, principal.org, key)
                .await
                .map_err(|e| fail(e.into()))?,
            None => Vec::new(),
        },
        None => crate::instruments::store::list(&mut conn, principal.org, None)
            .await
            .map_err(|e| fail(e.into()))?,
    };
    let slug = crate::organizations::store::slug_of(&mut conn, principal.org)
        .await
        .map_err(|e| fail(e.into()))?
        .unwrap_or_default();
    let mut entries = Vec::new();
    for row in rows {
        if query.version.as_deref().is_some_and(|v| v != row.version.to_string()) {
            continue;
        }
        let loaded = crate::instruments::load(row, &slug).map_err(fail)?;
        // The resource's plain URL, never a version-specific one (bdl-8).
        let full_url = resources::questionnaire_url(&base, &loaded.version.key);
        entries.push((full_url, resources::questionnaire(&base, &loaded)));
    }
    let self_url = format!("{base}{}", req.uri());
    Ok(fhir_json(StatusCode::OK, &resources::bundle(&self_url, None, entries)))
}
