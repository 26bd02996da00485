//! The shapes of the alliance-outcome analysis (its query, its answer and the rows it reads),
//! apart from the handler so the pure course analysis (`courses`) can build them without
//! importing the handler.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::scoring::Rater;
use crate::scoring::association::Estimate;

/// Below this many courses nothing is computed, whatever `min_patients` asks (privacy).
pub const MIN_PATIENTS_FLOOR: i64 = 5;
pub(super) const DEFAULT_MIN_PATIENTS: i64 = 10;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AllianceOutcomeQuery {
    /// An alliance instrument's key, e.g. `wai-sr`.
    pub alliance: String,
    /// An outcome instrument's key, e.g. `phq-9`.
    pub outcome: String,
    /// The session whose alliance is related to the outcome (required, >= 1).
    pub at_session: Option<i64>,
    /// Rater of both instruments, default `patient`.
    pub rater: Option<Rater>,
    /// Only courses whose alliance response rates this clinician.
    #[serde(default, deserialize_with = "crate::refs::nfc_option")]
    pub clinician: Option<String>,
    /// Only responses administered at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only responses administered before this time.
    pub to: Option<DateTime<Utc>>,
    /// Fewest courses for any statistic (default 10, at least 5).
    pub min_patients: Option<i64>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct EstimateView {
    pub estimate: f64,
    pub se: f64,
    pub t: f64,
    pub p: f64,
    pub ci_lower: f64,
    pub ci_upper: f64,
}

impl From<&Estimate> for EstimateView {
    fn from(e: &Estimate) -> Self {
        EstimateView {
            estimate: e.estimate,
            se: e.se,
            t: e.t,
            p: e.p,
            ci_lower: e.ci_lower,
            ci_upper: e.ci_upper,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Correlation {
    /// Pearson r of the alliance and the improvement; null when either variance is 0.
    pub r: Option<f64>,
    /// Fisher-z 95% interval: tanh(atanh(r) -/+ 1.959963984540054 / sqrt(n - 3)).
    pub ci_lower: Option<f64>,
    pub ci_upper: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LaggedCoefficients {
    pub intercept: EstimateView,
    pub alliance: EstimateView,
    pub prior_change: EstimateView,
    pub baseline: EstimateView,
}

/// OLS of the later change on the alliance, the change before it and the baseline.
#[derive(Debug, Serialize, ToSchema)]
pub struct Lagged {
    pub n: usize,
    pub r_squared: Option<f64>,
    pub coefficients: LaggedCoefficients,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Tertile {
    pub tertile: u8,
    pub n: usize,
    /// Null when suppressed (as are the other figures below).
    pub alliance_min: Option<f64>,
    pub alliance_max: Option<f64>,
    pub mean_improvement: Option<f64>,
    /// Share of the tertile's courses meeting the outcome's response rule; null without one.
    pub response_rate: Option<f64>,
    /// Share meeting the remission rule; null without one.
    pub remission_rate: Option<f64>,
    /// True when a token without `responses:read` would learn figures of fewer than 5
    /// courses: then every figure is null (`n` stays).
    pub suppressed: bool,
}

impl Tertile {
    /// Withholds every figure (the small-cell floor).
    pub fn suppress(&mut self) {
        self.alliance_min = None;
        self.alliance_max = None;
        self.mean_improvement = None;
        self.response_rate = None;
        self.remission_rate = None;
        self.suppressed = true;
    }
}

/// Clinician effects: only courses with a clinician, clinicians with at least 2 of them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClinicianEffects {
    pub clinicians: usize,
    pub courses: usize,
    /// ICC(1) of the improvement by clinician (one-way ANOVA, not truncated).
    pub outcome_icc1: Option<f64>,
    /// ICC(1) of the alliance by clinician.
    pub alliance_icc1: Option<f64>,
    /// OLS of improvement on `A - mean_j(A)` (within) and `mean_j(A)` (between).
    pub within: Option<EstimateView>,
    pub between: Option<EstimateView>,
}

/// The published figures a clinic's own numbers can be read against.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    pub alliance_outcome_r: f64,
    pub source: &'static str,
    pub pharmacotherapy_effect: f64,
    pub pharmacotherapy_source: &'static str,
    pub prescriber_variance_share: f64,
    pub prescriber_source: &'static str,
}

pub(super) const PUBLISHED: Published = Published {
    alliance_outcome_r: 0.278,
    source: "Flückiger et al. 2018, 295 studies",
    pharmacotherapy_effect: 0.30,
    pharmacotherapy_source: "Totura et al. 2018",
    prescriber_variance_share: 0.091,
    prescriber_source: "McKay, Imel & Wampold 2006 (TDCRP, BDI)",
};

#[derive(Debug, Serialize, ToSchema)]
pub struct AllianceOutcome {
    pub alliance: String,
    pub outcome: String,
    pub at_session: i64,
    pub rater: Rater,
    /// Courses that have an alliance at `at_session`, an outcome at or before it and one after.
    pub n: usize,
    pub min_patients: i64,
    /// Null with fewer than `min_patients` courses.
    pub correlation: Option<Correlation>,
    /// Null with fewer than `min_patients` courses or a singular design.
    pub lagged: Option<Lagged>,
    /// Empty with fewer than `min_patients` courses.
    pub tertiles: Vec<Tertile>,
    /// Null unless at least 3 clinicians have at least 2 courses each.
    pub clinicians: Option<ClinicianEffects>,
    pub published: Published,
}

/// One response of either instrument, in course order.
#[derive(Debug, Clone, Queryable)]
pub struct CourseRow {
    pub patient: String,
    pub episode: Option<String>,
    pub instrument_key: String,
    pub session: Option<i32>,
    pub administered_at: DateTime<Utc>,
    pub total: Option<f64>,
    pub clinician: Option<String>,
}
