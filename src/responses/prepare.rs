//! Parsing a posted response into a row ready to insert: every field checked, every problem
//! reported at once (pointers relative to the response), the answers scored against the
//! pinned (or latest published) instrument version.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::{NewResponse, Source};
use super::store::{NewAdministrationRow, ScoreColumns};
use super::{MAX_CLOCK_SKEW, MAX_SESSION};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::ids::OrgId;
use crate::instruments::model::InstrumentStatus;
use crate::instruments::{LoadedInstrument, Scored, Wanted, validate::MAX_ITEMS};
use crate::scoring::Rater;

/// Instrument versions already resolved in this request, in front of the process-wide
/// built-ins (immutable, so never read from the database on the ingest path).
pub struct InstrumentCache<'a> {
    builtins: &'a crate::instruments::builtin::BuiltinCatalogue,
    found: HashMap<(String, Option<i32>), Arc<LoadedInstrument>>,
}

impl<'a> InstrumentCache<'a> {
    pub fn new(builtins: &'a crate::instruments::builtin::BuiltinCatalogue) -> Self {
        InstrumentCache {
            builtins,
            found: HashMap::new(),
        }
    }

    async fn get(
        &mut self,
        conn: &mut AsyncPgConnection,
        org: OrgId,
        key: &str,
        version: Option<i32>,
    ) -> ApiResult<Arc<LoadedInstrument>> {
        let cache_key = (key.to_string(), version);
        if let Some(found) = self.found.get(&cache_key) {
            return Ok(found.clone());
        }
        let loaded = crate::instruments::find(conn, self.builtins, org, key, Wanted::from(version))
            .await
            .map_err(|e| e.in_body(""))?;
        self.found.insert(cache_key, loaded.clone());
        Ok(loaded)
    }
}

fn check_reference(errors: &mut Vec<FieldError>, pointer: &str, value: &str) {
    if let Err(detail) = crate::refs::Reference::parse(value) {
        errors.push(FieldError::new(pointer, detail));
    }
}

/// Checks and scores one response; the row is ready to insert. Every field problem is
/// reported at once (pointers relative to the response).
pub async fn prepare(
    conn: &mut AsyncPgConnection,
    cache: &mut InstrumentCache<'_>,
    principal: &Principal,
    body: NewResponse,
    source: Source,
) -> ApiResult<NewAdministrationRow> {
    let mut errors = Vec::new();
    check_references(&body, &mut errors);
    let administered_at = check_time(&body.administered_at, &mut errors);
    if let Some(s) = body.session
        && !(1..=MAX_SESSION).contains(&s)
    {
        errors.push(FieldError::new("/session", format!("must be 1 to {MAX_SESSION}")));
    }
    if body.answers.len() > MAX_ITEMS {
        errors.push(FieldError::new("/answers", format!("at most {MAX_ITEMS} answers")));
        return Err(ApiError::Validation(errors));
    }
    if body.answers.values().all(serde_json::Value::is_null) {
        errors.push(FieldError::new(
            "/answers",
            "must answer at least one item (empty or all null is no administration)",
        ));
    }
    let rater = match body.rater.as_deref() {
        None => Some(Rater::Patient),
        Some(text) => Rater::parse(text),
    };
    if rater.is_none() {
        errors.push(FieldError::new("/rater", "must be patient, clinician or observer"));
    }
    let instrument = match cache
        .get(conn, principal.org, &body.instrument, body.instrument_version)
        .await
    {
        Ok(i) => Some(i),
        Err(ApiError::Validation(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(other) => return Err(other),
    };
    let scored = match &instrument {
        Some(instrument) => check_against(instrument, rater, &body, &mut errors)?,
        None => None,
    };
    match (instrument, administered_at, rater, scored) {
        (Some(instrument), Some(at), Some(rater), Some(scored)) if errors.is_empty() => {
            Ok(into_row(principal, &instrument, body, at, rater, scored, source))
        }
        _ => Err(ApiError::Validation(errors)),
    }
}

fn check_references(body: &NewResponse, errors: &mut Vec<FieldError>) {
    check_reference(errors, "/patient", &body.patient);
    for (pointer, value) in [
        ("/clinician", &body.clinician),
        ("/episode", &body.episode),
        ("/external_id", &body.external_id),
    ] {
        if let Some(v) = value {
            check_reference(errors, pointer, v);
        }
    }
}

/// RFC 3339 with an offset, from 1900-01-01 to 5 minutes from now (clock skew).
fn check_time(text: &str, errors: &mut Vec<FieldError>) -> Option<DateTime<Utc>> {
    let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) else {
        errors.push(FieldError::new(
            "/administered_at",
            "must be an RFC 3339 date-time with an offset",
        ));
        return None;
    };
    let t = t.with_timezone(&Utc);
    if t > Utc::now() + MAX_CLOCK_SKEW {
        errors.push(FieldError::new("/administered_at", "lies in the future"));
    } else if t < earliest_administration() {
        errors.push(FieldError::new(
            "/administered_at",
            "must be on or after 1900-01-01 (FHIR dateTime and plausible clinical dates)",
        ));
    }
    Some(t)
}

/// What the instrument version says of the response: published, allows the rater, and the
/// answers fit its items and scale (then their score).
fn check_against(
    instrument: &LoadedInstrument,
    rater: Option<Rater>,
    body: &NewResponse,
    errors: &mut Vec<FieldError>,
) -> ApiResult<Option<Scored>> {
    match instrument.status() {
        InstrumentStatus::Published => {}
        InstrumentStatus::Retired => errors.push(FieldError::new(
            "/instrument_version",
            "this version is retired: it takes no new responses",
        )),
        InstrumentStatus::Draft => errors.push(FieldError::new(
            "/instrument_version",
            "this version is a draft: publish it first",
        )),
    }
    if let Some(r) = rater
        && !instrument.definition.raters.contains(&r)
    {
        errors.push(FieldError::new(
            "/rater",
            format!("`{}` does not allow this rater", instrument.version.key),
        ));
    }
    match crate::instruments::score_answers(instrument, &body.answers, "") {
        Ok(scored) => Ok(Some(scored)),
        Err(ApiError::Validation(mut e)) => {
            errors.append(&mut e);
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

fn into_row(
    principal: &Principal,
    instrument: &LoadedInstrument,
    body: NewResponse,
    administered_at: DateTime<Utc>,
    rater: Rater,
    Scored {
        score,
        score_error,
        flags,
    }: Scored,
    source: Source,
) -> NewAdministrationRow {
    let payload_hash = canonical_hash(&body, administered_at);
    // Only answered items are stored, as the numbers given (already checked against the scale).
    let answers: serde_json::Map<String, serde_json::Value> =
        body.answers.into_iter().filter(|(_, v)| !v.is_null()).collect();
    NewAdministrationRow {
        org_id: principal.org,
        id: Uuid::new_v4(),
        instrument_key: instrument.version.key.clone(),
        instrument_version: instrument.version.version,
        patient: body.patient,
        clinician: body.clinician,
        episode: body.episode,
        rater: rater.as_str().to_string(),
        administered_at,
        session: body.session.and_then(|s| i32::try_from(s).ok()),
        answers: serde_json::Value::Object(answers),
        external_id: body.external_id,
        external_system: body.external_system,
        payload_hash,
        source,
        created_by: principal.client_id.to_string(),
        scored: ScoreColumns {
            total: score.as_ref().map(|s| s.total),
            mean: score.as_ref().map(|s| s.mean),
            pomp: score.as_ref().map(|s| s.pomp),
            subscales: score.as_ref().map(|s| json!(s.subscales)),
            answered: score.as_ref().and_then(|s| i32::try_from(s.answered).ok()),
            missing: score.as_ref().and_then(|s| i32::try_from(s.missing).ok()),
            prorated: score.as_ref().map(|s| s.prorated),
            // Every flag the response has: item flags are kept for an unscored response too.
            flags: Some(flags),
            band: score.as_ref().and_then(|s| s.band.clone()),
            score_error,
        },
    }
}

/// The earliest `administered_at` accepted: 1900-01-01T00:00:00Z. Year 0000 parses as RFC
/// 3339 but is no valid FHIR dateTime and no plausible administration.
fn earliest_administration() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(-2_208_988_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The idempotency fingerprint of a posted response: the request as given (instrument and
/// version as given, references, rater with its default, the time normalised to UTC,
/// session, the answered items), so a retry is a duplicate even after a newer version is
/// published or the pinned one retired. Answers compare as numbers: `4` and `4.0` are the
/// same answer. `None` when the time does not parse (then the body is invalid anyway).
pub fn payload_hash(body: &NewResponse) -> Option<Vec<u8>> {
    let administered_at = DateTime::parse_from_rfc3339(body.administered_at.trim())
        .ok()?
        .with_timezone(&Utc);
    Some(canonical_hash(body, administered_at))
}

fn canonical_hash(body: &NewResponse, administered_at: DateTime<Utc>) -> Vec<u8> {
    let answers: serde_json::Map<String, serde_json::Value> = body
        .answers
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), canonical_number(v)))
        .collect();
    let canonical = json!({
        "instrument": body.instrument,
        "instrument_version": body.instrument_version,
        "patient": body.patient,
        "clinician": body.clinician,
        "episode": body.episode,
        "rater": body.rater.as_deref().unwrap_or("patient"),
        "administered_at": administered_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "session": body.session,
        "answers": answers,
    });
    Sha256::digest(serde_json::to_vec(&canonical).unwrap_or_default()).to_vec()
}

/// A whole number written as `4.0` fingerprints as `4` (what v1 stored for `4`); any other
/// value as given.
fn canonical_number(value: &serde_json::Value) -> serde_json::Value {
    match value.as_f64() {
        Some(f) if value.is_f64() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
            // Exact: |f| < 2^53 is an integer a double holds exactly.
            #[allow(clippy::cast_possible_truncation)]
            serde_json::Value::from(f as i64)
        }
        _ => value.clone(),
    }
}
