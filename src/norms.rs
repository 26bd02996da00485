//! Norms: the SD and reliability the reliable change index uses, from the instrument's
//! definition or from the organisation's own data (first complete response per patient),
//! and a per-process cache of the latter. Shared by analytics and alerts; knows neither.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::ids::OrgId;
use crate::instruments::LoadedInstrument;
use crate::responses::model::ResponseStatus;
use crate::schema::responses;
use crate::scoring::stats;
use crate::scoring::{InstrumentDefinition, Rater, to_decimal, to_f64};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NormsSource {
    /// SD and reliability from the instrument version's definition.
    Instrument,
    /// Derived from the organisation's own data (first complete response per patient).
    Organisation,
}

/// Organisation norms need at least this many patients (the README, "Analytics").
pub const MIN_NORM_PATIENTS: usize = 30;
/// How long a process reuses organisation norms it computed. New responses for the
/// instrument clear the entry at once on the instance that took them; other instances
/// catch up within this time.
pub const NORMS_TTL: Duration = Duration::from_secs(300);

/// The SD and reliability the RCI uses, and where they came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormsUsed {
    pub source: Option<NormsSource>,
    pub n: Option<i64>,
    pub sd: Option<f64>,
    pub reliability: Option<f64>,
    pub computed_at: DateTime<Utc>,
}

impl NormsUsed {
    pub fn s_diff(&self) -> Option<f64> {
        match (self.sd, self.reliability) {
            (Some(sd), Some(r)) => Some(stats::s_diff(sd, r)),
            _ => None,
        }
    }
}

type NormsKey = (OrgId, String, i32, Rater);

/// Per-process cache of organisation norms.
#[derive(Default)]
pub struct NormsCache(Mutex<HashMap<NormsKey, (Instant, NormsUsed)>>);

impl NormsCache {
    fn get(&self, key: &NormsKey) -> Option<NormsUsed> {
        let map = self.0.lock().ok()?;
        map.get(key).filter(|(at, _)| at.elapsed() < NORMS_TTL).map(|(_, n)| *n)
    }

    fn put(&self, key: NormsKey, norms: NormsUsed) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(key, (Instant::now(), norms));
        }
    }

    /// Forgets every cached norm of one organisation (a patient was erased).
    pub fn invalidate_organisation(&self, org: OrgId) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|(o, _, _, _), _| *o != org);
        }
    }

    /// Forgets every cached norm of one instrument in one organisation (new data arrived).
    pub fn invalidate(&self, org: OrgId, instrument: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|(o, k, _, _), _| !(*o == org && k == instrument));
        }
    }
}

/// Item scores after reverse keying, when every item is answered.
fn item_scores(definition: &InstrumentDefinition, answers: &serde_json::Value) -> Option<Vec<f64>> {
    definition
        .items
        .iter()
        .map(|item| {
            let raw = to_decimal(answers.get(&item.id)?.as_f64()?)?;
            Some(to_f64(if item.reverse {
                definition.scale.reverse(raw)
            } else {
                raw
            }))
        })
        .collect()
}

/// Norms from a sample of first complete responses: SD of totals and Cronbach's alpha of
/// reverse-keyed item scores, both only with at least 30 patients (and neither when the SD
/// is 0 or alpha falls outside (0, 1), where the RCI is undefined).
pub fn organisation_norms(
    definition: &InstrumentDefinition,
    sample: &[(Option<f64>, serde_json::Value)],
) -> (usize, Option<f64>, Option<f64>) {
    let complete: Vec<(f64, Vec<f64>)> = sample
        .iter()
        .filter_map(|(total, answers)| Some(((*total)?, item_scores(definition, answers)?)))
        .collect();
    let n = complete.len();
    if n < MIN_NORM_PATIENTS {
        return (n, None, None);
    }
    let totals: Vec<f64> = complete.iter().map(|(t, _)| *t).collect();
    let rows: Vec<Vec<f64>> = complete.into_iter().map(|(_, items)| items).collect();
    let sd = stats::sample_sd(&totals).filter(|sd| *sd > 0.0);
    // Like instrument norms, a usable reliability lies strictly between 0 and 1.
    let alpha = stats::cronbach_alpha(&rows).filter(|a| *a > 0.0 && *a < 1.0);
    match (sd, alpha) {
        (Some(sd), Some(a)) => (n, Some(sd), Some(a)),
        _ => (n, None, None),
    }
}

/// The norms for one instrument version and rater in one organisation.
pub async fn norms_for(
    conn: &mut AsyncPgConnection,
    cache: &NormsCache,
    org: OrgId,
    instrument: &LoadedInstrument,
    rater: Rater,
) -> ApiResult<NormsUsed> {
    if let Some(n) = instrument.definition.norms {
        return Ok(NormsUsed {
            source: Some(NormsSource::Instrument),
            n: None,
            sd: Some(n.sd),
            reliability: Some(n.reliability),
            computed_at: instrument.created_at,
        });
    }
    let key = (org, instrument.version.key.clone(), instrument.version.version, rater);
    if let Some(found) = cache.get(&key) {
        return Ok(found);
    }
    let sample = first_complete_responses(conn, org, &key.1, instrument.version.version, rater.as_str()).await?;
    let (n, sd, reliability) = organisation_norms(&instrument.definition, &sample);
    let norms = NormsUsed {
        source: sd.map(|_| NormsSource::Organisation),
        n: Some(n as i64),
        sd,
        reliability,
        computed_at: Utc::now(),
    };
    cache.put(key, norms);
    Ok(norms)
}

/// Each patient's first active, complete (not prorated) response for one instrument
/// version and rater: (total, answers). The sample for organisation norms.
pub async fn first_complete_responses(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    key: &str,
    version: i32,
    rater: &str,
) -> QueryResult<Vec<(Option<f64>, serde_json::Value)>> {
    responses::table
        .filter(responses::org_id.eq(org))
        .filter(responses::instrument_key.eq(key))
        .filter(responses::instrument_version.eq(version))
        .filter(responses::rater.eq(rater))
        .filter(responses::status.eq(ResponseStatus::Active))
        .filter(responses::total.is_not_null())
        .filter(responses::prorated.eq(false))
        .distinct_on(responses::patient)
        .select((responses::total, responses::answers))
        .order((
            responses::patient.asc(),
            responses::administered_at.asc(),
            responses::seq.asc(),
        ))
        .load(conn)
        .await
}
