use crate::scoring::Direction;
use crate::scoring::outcome::ReliableChangeRule;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::scoring::Rater;
use crate::scoring::SubscaleScore;
use crate::scoring::stats::ReliableChange;

pub use crate::norms::NormsSource;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrendQuery {
    /// Instrument key (required).
    pub instrument: String,
    /// Rater, default `patient`.
    pub rater: Option<Rater>,
    #[serde(default, deserialize_with = "crate::refs::nfc_option")]
    pub clinician: Option<String>,
    #[serde(default, deserialize_with = "crate::refs::nfc_option")]
    pub episode: Option<String>,
    /// Only this version of the instrument.
    pub instrument_version: Option<i32>,
    /// administered_at at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// administered_at before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrendPoint {
    pub response_id: Uuid,
    pub administered_at: DateTime<Utc>,
    pub session: Option<i32>,
    pub clinician: Option<String>,
    pub total: f64,
    pub mean: f64,
    pub pomp: f64,
    pub subscales: std::collections::BTreeMap<String, SubscaleScore>,
    pub flags: Vec<String>,
    /// The interpretation band of the total (outcome instruments); null without bands.
    pub band: Option<String>,
    /// What the organisation's expected-response model says of this total; null at `t = 1`
    /// (the intake), beyond `t = 20`, or without a fitted model.
    pub expected: Option<PointExpectation>,
}

/// A total against the expected-response model: its position `t` in its course (counted on
/// the whole course, whatever the trend's filters), the expected total for the course's
/// intake at `t`, the bound (1.2816 residual SDs to the worse side) and whether the total
/// is within it.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct PointExpectation {
    pub t: usize,
    pub expected: f64,
    pub bound: f64,
    pub on_track: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rupture {
    /// The response whose total dropped.
    pub response_id: Uuid,
    pub previous_response_id: Uuid,
    pub from: f64,
    pub to: f64,
    pub drop: f64,
    /// `reliable_drop` or `sd_drop` (the rule that fired).
    pub rule: String,
    pub repaired: bool,
    pub repaired_by_response_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrendSummary {
    pub n: usize,
    pub baseline: Option<f64>,
    pub latest: Option<f64>,
    pub change: Option<f64>,
    /// OLS slope of total on session number; null unless every point has one.
    pub slope_per_session: Option<f64>,
    /// OLS slope of total on weeks since the first point.
    pub slope_per_week: Option<f64>,
    /// `(latest - baseline) / S_diff`, with its v1 sign whatever the direction; null without norms.
    pub rci: Option<f64>,
    /// `improved`, `deteriorated` or `unchanged`, in the instrument's direction (a PHQ-9 fall
    /// of 6 is `improved`); null when it cannot be decided (no norms for the RCI rule).
    pub reliable_change: Option<ReliableChange>,
    pub norms_source: Option<NormsSource>,
    /// Ruptures, for instruments with a rupture rule (outcome instruments have none).
    pub ruptures: Vec<Rupture>,
    pub below_cutoff: usize,
    pub direction: Direction,
    /// `rci` or `points` (the definition's `outcome.reliable_change_points`); null with no points.
    pub reliable_change_rule: Option<ReliableChangeRule>,
    pub baseline_band: Option<String>,
    pub latest_band: Option<String>,
    /// Improvement from baseline of at least `outcome.response_reduction` x |baseline|;
    /// null without the rule or with a baseline of 0.
    pub response: Option<bool>,
    /// The latest total meets `outcome.remission`; null without the rule.
    pub remission: Option<bool>,
    /// Points left out because their instrument version is not on the latest version's
    /// scale (scale min, max and step, item ids, scoring method): one scale per series.
    pub excluded_points: usize,
    /// The versions of those points.
    pub excluded_versions: Vec<i32>,
    /// The latest point's `expected.on_track`; null when it has no expectation.
    pub on_track: Option<bool>,
}

/// A response of the series that could not be scored: not a point (it has no total), but
/// shown with its reason and the item flags its answers raised.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnscoredResponse {
    pub response_id: Uuid,
    pub administered_at: DateTime<Utc>,
    pub session: Option<i32>,
    /// Why there is no score (e.g. too many items missing).
    pub reason: String,
    /// The item flags its raw answers raised (e.g. `item_9_positive`).
    pub flags: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Trend {
    pub patient: String,
    pub instrument: String,
    pub rater: Rater,
    /// The scored responses, in time order.
    pub points: Vec<TrendPoint>,
    /// The responses of the series that could not be scored, in time order.
    pub unscored: Vec<UnscoredResponse>,
    pub summary: TrendSummary,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NormsQuery {
    /// Rater, default `patient`.
    pub rater: Option<Rater>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NormsView {
    pub instrument: String,
    pub instrument_version: i32,
    pub rater: Rater,
    pub source: Option<NormsSource>,
    /// Patients used (organisation norms); null for instrument norms.
    pub n: Option<i64>,
    pub sd: Option<f64>,
    /// Cronbach's alpha when the source is `organisation`.
    pub reliability: Option<f64>,
    pub computed_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Instrument key (required).
    pub instrument: String,
    /// Rater, default `patient`.
    pub rater: Option<Rater>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClinicianListQuery {
    /// Instrument key (required).
    pub instrument: String,
    /// Rater, default `patient`.
    pub rater: Option<Rater>,
    /// Clinicians with fewer patients are left out (default 5).
    #[param(minimum = 1)]
    pub min_patients: Option<u32>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ReliableChangeCounts {
    pub improved: usize,
    pub unchanged: usize,
    pub deteriorated: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClinicianSummary {
    pub clinician: String,
    pub instrument: String,
    pub rater: Rater,
    pub patients: usize,
    pub responses: i64,
    /// Mean, sample SD, min and max of the per-patient means of totals.
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Responses flagged below the cut-off / responses; null for an instrument without a
    /// cut-off.
    pub share_below_cutoff: Option<f64>,
    pub patients_with_rupture: Option<usize>,
    pub ruptures: Option<usize>,
    /// Repaired ruptures / ruptures; null when there are none.
    pub share_repaired: Option<f64>,
    /// Patients by the class of their RCI (patients whose RCI is null are not counted).
    pub reliable_change: Option<ReliableChangeCounts>,
    /// Mean total of responses at session 3 (the early alliance that predicts outcome).
    pub session3_mean: Option<f64>,
    /// True when the statistics are withheld: a token without `responses:read` never gets a
    /// number computed from fewer than 5 patients (then every statistic above is null;
    /// `patients` and `responses` stay).
    pub suppressed: bool,
}

impl ClinicianSummary {
    /// Withholds every statistic (the small-cell floor).
    pub fn suppress(&mut self) {
        self.mean = None;
        self.sd = None;
        self.min = None;
        self.max = None;
        self.share_below_cutoff = None;
        self.patients_with_rupture = None;
        self.ruptures = None;
        self.share_repaired = None;
        self.reliable_change = None;
        self.session3_mean = None;
        self.suppressed = true;
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClinicianSummaryList {
    pub items: Vec<ClinicianSummary>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrajectoryQuery {
    /// Instrument key (required).
    pub instrument: String,
    /// Only `session`.
    pub by: Option<String>,
    /// Rater, default `patient`.
    pub rater: Option<Rater>,
    #[serde(default, deserialize_with = "crate::refs::nfc_option")]
    pub clinician: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrajectoryPoint {
    pub session: i32,
    pub n: i64,
    /// Null when suppressed.
    pub mean: Option<f64>,
    /// Sample SD; null when n = 1 or suppressed.
    pub sd: Option<f64>,
    /// 95% confidence interval of the mean (t distribution, n - 1 df); null when n = 1 or
    /// suppressed.
    pub ci_lower: Option<f64>,
    pub ci_upper: Option<f64>,
    /// True when a token without `responses:read` would learn a number from fewer than 5
    /// patients: then `mean`, `sd` and the interval are null (`n` stays).
    pub suppressed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Trajectory {
    pub instrument: String,
    pub rater: Rater,
    pub by: String,
    pub points: Vec<TrajectoryPoint>,
}
