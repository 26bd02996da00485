//! Longitudinal analytics: patient trends with reliable change and ruptures, organisation
//! norms, clinician summaries and the cohort trajectory. SQL selects and groups; every
//! statistic is computed by the pure functions of `scoring`.

pub mod alliance_outcome;
pub mod alliance_outcome_model;
pub mod chart;
pub mod clinicians;
pub mod courses;
pub mod kept_series;
pub mod model;
pub mod routes;
pub mod store;
pub mod trend_chart;
pub mod trends;

use crate::ids::OrgId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;

use crate::error::ApiResult;
use crate::instruments::LoadedInstrument;
use crate::scoring::outcome::{Change, assess_change};
use crate::scoring::ruptures::{RuptureFound, detect_ruptures};
use crate::scoring::stats;
use crate::scoring::{InstrumentDefinition, Rater, RuptureRuleKind, to_decimal, to_f64};
use model::{NormsSource, NormsView};

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
    let sample = store::first_complete_responses(conn, org, &key.1, instrument.version.version, rater.as_str()).await?;
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

pub fn norms_view(instrument: &LoadedInstrument, rater: Rater, norms: NormsUsed) -> NormsView {
    NormsView {
        instrument: instrument.version.key.clone(),
        instrument_version: instrument.version.version,
        rater,
        source: norms.source,
        n: norms.n,
        sd: norms.sd,
        reliability: norms.reliability,
        computed_at: norms.computed_at,
    }
}

pub fn rule_name(kind: RuptureRuleKind) -> &'static str {
    match kind {
        RuptureRuleKind::ReliableDrop => "reliable_drop",
        RuptureRuleKind::SdDrop => "sd_drop",
    }
}

/// Ruptures and reliable change of one series of totals, under one definition and norms.
/// Ruptures (only where the definition has a rupture rule) and reliable change, in the
/// instrument's direction, of one series of totals under one definition and norms.
pub fn series_statistics(
    totals: &[f64],
    definition: &InstrumentDefinition,
    norms: &NormsUsed,
) -> (Vec<RuptureFound>, Option<Change>) {
    let s_diff = norms.s_diff();
    let ruptures = definition
        .rupture
        .map(|rule| detect_ruptures(totals, &rule, s_diff))
        .unwrap_or_default();
    let change = totals
        .first()
        .zip(totals.last())
        .map(|(b, l)| assess_change(definition, *b, *l, s_diff));
    (ruptures, change)
}

/// The instrument version a series was scored with (its latest point's): stored responses
/// name versions that exist, so a failed lookup is the database's or an internal fault.
pub async fn instrument_at(
    conn: &mut AsyncPgConnection,
    builtins: &crate::instruments::builtin::BuiltinCatalogue,
    org: OrgId,
    key: &str,
    version: i32,
) -> ApiResult<Arc<LoadedInstrument>> {
    crate::instruments::find(conn, builtins, org, key, crate::instruments::Wanted::Exact(version))
        .await
        .map_err(crate::instruments::LookupError::in_path)
}
