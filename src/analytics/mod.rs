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
pub mod patients;
pub mod routes;
pub mod store;
pub mod trend_chart;
pub mod trends;

pub use crate::instruments::instrument_at;
pub use crate::norms::{MIN_NORM_PATIENTS, NORMS_TTL, NormsCache, NormsUsed, norms_for, organisation_norms};
pub use crate::series::{rule_name, series_statistics};

use crate::instruments::LoadedInstrument;
use crate::scoring::Rater;
use model::NormsView;

/// A token without `responses:read` never gets a number computed from fewer patients (or
/// treatment courses) than this: the server-side small-cell floor.
pub const SMALL_CELL_FLOOR: usize = 5;

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
