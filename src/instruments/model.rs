//! The instrument definition as clients write and read it (the OpenAPI schemas `NewInstrument` and `InstrumentVersion`).
//! Enumerations are taken as text here so that the validator can name every bad one at
//! once; `validate` turns a `NewInstrument` into the typed `scoring::InstrumentDefinition`.

use crate::scoring::{Direction, Kind};
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleSpec {
    pub min: f64,
    pub max: f64,
    /// 1 for Likert items; 0.1 for the SRS's 0.0-10.0 line.
    pub step: f64,
    /// Anchor labels by scale value (`"1": "Seldom"`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemSpec {
    /// Item ids are strings (`"1"`), never positions.
    pub id: String,
    /// Item wording; null for copyrighted instruments shipped without text.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub subscale: Option<String>,
    /// Reverse-keyed: scored as `scale_min + scale_max - raw`.
    #[serde(default)]
    pub reverse: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscaleSpec {
    pub key: String,
    pub title: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MissingSpec {
    /// Items each subscale may miss and still be prorated; null or absent: none.
    #[serde(default)]
    pub max_per_subscale: Option<u32>,
    /// Items that may be missing in all; null or absent: none.
    #[serde(default)]
    pub max_total: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoringSpec {
    /// `sum` or `mean`: which of total and mean the cut-off is compared with.
    #[schema(example = "sum")]
    pub method: String,
    #[serde(default)]
    pub missing: MissingSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CutoffSpec {
    pub value: f64,
    /// `lt`, `le`, `gt` or `ge`: the flag `below_cutoff` is set when `score <comparator> value`.
    #[schema(example = "lt")]
    pub comparator: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InterpretationSpec {
    #[serde(default)]
    pub cutoff: Option<CutoffSpec>,
    /// `item_below_threshold` is flagged when any item scores under this value.
    #[serde(default)]
    pub item_threshold: Option<f64>,
    /// Labelled, inclusive ranges of the total, sorted and not overlapping, inside the
    /// possible totals; a score carries the label of the band holding its total.
    #[serde(default)]
    pub bands: Vec<BandSpec>,
    /// Flags raised when one item's raw answer meets a comparison (an unanswered item
    /// never raises one).
    #[serde(default)]
    pub item_flags: Vec<ItemFlagSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BandSpec {
    #[schema(example = 10)]
    pub min: f64,
    #[schema(example = 14)]
    pub max: f64,
    #[schema(example = "moderate")]
    pub label: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemFlagSpec {
    /// The item id.
    #[schema(example = "9")]
    pub item: String,
    /// `lt`, `le`, `gt` or `ge`: raised when `raw answer <comparator> value`.
    #[schema(example = "ge")]
    pub comparator: String,
    #[schema(example = 1)]
    pub value: f64,
    /// The flag added to the score's `flags`.
    #[schema(example = "item_9_positive")]
    pub flag: String,
}

/// Treatment-outcome rules, each optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeSpec {
    /// In (0, 1]: response when the improvement from baseline (in the instrument's
    /// direction) is at least this share of |baseline| (0.5: a 50% reduction).
    #[serde(default)]
    #[schema(example = 0.5)]
    pub response_reduction: Option<f64>,
    /// Remission when the latest total meets this comparison (PHQ-9: `lt` 5).
    #[serde(default)]
    pub remission: Option<CutoffSpec>,
    /// When set, reliable change is |change| >= these points (not the RCI).
    #[serde(default)]
    #[schema(example = 6)]
    pub reliable_change_points: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NormsSpec {
    /// Standard deviation for the Reliable Change Index (> 0).
    #[serde(default)]
    pub sd: Option<f64>,
    /// Reliability, strictly between 0 and 1.
    #[serde(default)]
    pub reliability: Option<f64>,
    /// Where the norms come from (citation).
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuptureSpec {
    /// `reliable_drop` or `sd_drop`.
    #[schema(example = "reliable_drop")]
    pub rule: String,
    /// The SD multiplier of `sd_drop` (and of the fallback when there are no norms).
    pub k: f64,
    /// How many later points may repair a rupture.
    pub repair_window: u32,
    /// The floor of the SD that `sd_drop` (and `reliable_drop` without norms) compares a
    /// drop with: `max(SD of the earlier points, min_sd)`. Default 1 (one point of the
    /// total), so a crash after a perfectly stable history is a rupture; 0 restores the
    /// v1 rule (an SD of 0 never fires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 1.0)]
    pub min_sd: Option<f64>,
}

fn default_rupture() -> Option<RuptureSpec> {
    Some(RuptureSpec::default())
}

impl Default for RuptureSpec {
    fn default() -> Self {
        RuptureSpec {
            rule: "reliable_drop".into(),
            k: 2.0,
            repair_window: 3,
            min_sd: None,
        }
    }
}

/// The body of `POST /v1/instruments` and `PUT /v1/instruments/{key}/versions/{v}`:
/// a version's definition without the read-only fields (`version`, `status`, `owner`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstrument {
    /// 2 to 63 of a-z, 0-9 and '-'.
    #[schema(example = "my-alliance")]
    pub key: String,
    pub title: String,
    #[serde(default)]
    pub citation: Option<String>,
    #[serde(default)]
    pub licence: Option<String>,
    /// Who may complete it: `patient`, `clinician`, `observer`.
    #[schema(example = json!(["patient"]))]
    pub raters: Vec<String>,
    pub scale: ScaleSpec,
    pub items: Vec<ItemSpec>,
    #[serde(default)]
    pub subscales: Vec<SubscaleSpec>,
    pub scoring: ScoringSpec,
    #[serde(default)]
    pub interpretation: InterpretationSpec,
    #[serde(default)]
    pub norms: NormsSpec,
    /// The rupture rule; absent means the default (`reliable_drop`, k 2, window 3), null
    /// means no rupture detection (outcome instruments normally have none).
    #[serde(default = "default_rupture")]
    pub rupture: Option<RuptureSpec>,
    /// `alliance` (default) or `outcome` (a symptom or functioning measure).
    #[serde(default)]
    pub kind: Kind,
    /// `higher_is_better` (default) or `lower_is_better`: reliable change, response and the
    /// alliance-outcome orientation follow it.
    #[serde(default)]
    pub direction: Direction,
    /// Response, remission and fixed-point reliable change; null when none apply.
    #[serde(default)]
    pub outcome: Option<OutcomeSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstrumentStatus {
    Draft,
    Published,
    Retired,
}

impl InstrumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstrumentStatus::Draft => "draft",
            InstrumentStatus::Published => "published",
            InstrumentStatus::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(InstrumentStatus::Draft),
            "published" => Some(InstrumentStatus::Published),
            "retired" => Some(InstrumentStatus::Retired),
            _ => None,
        }
    }
}

/// One instrument version as read (`GET /v1/instruments/{key}/versions/{v}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstrumentVersion {
    pub key: String,
    pub version: i32,
    pub status: InstrumentStatus,
    /// `builtin` or the owning organisation's slug.
    pub owner: String,
    pub title: String,
    pub citation: Option<String>,
    pub licence: Option<String>,
    pub raters: Vec<String>,
    pub scale: ScaleSpec,
    pub items: Vec<ItemSpec>,
    pub subscales: Vec<SubscaleSpec>,
    pub scoring: ScoringSpec,
    pub interpretation: InterpretationSpec,
    pub norms: NormsSpec,
    pub rupture: Option<RuptureSpec>,
    pub kind: Kind,
    pub direction: Direction,
    pub outcome: Option<OutcomeSpec>,
}

impl InstrumentVersion {
    pub fn new(spec: NewInstrument, version: i32, status: InstrumentStatus, owner: String) -> Self {
        InstrumentVersion {
            key: spec.key,
            version,
            status,
            owner,
            title: spec.title,
            citation: spec.citation,
            licence: spec.licence,
            raters: spec.raters,
            scale: spec.scale,
            items: spec.items,
            subscales: spec.subscales,
            scoring: spec.scoring,
            interpretation: spec.interpretation,
            norms: spec.norms,
            rupture: spec.rupture,
            kind: spec.kind,
            direction: spec.direction,
            outcome: spec.outcome,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstrumentList {
    pub items: Vec<InstrumentVersion>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionInfo {
    pub version: i32,
    pub status: InstrumentStatus,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/instruments/{key}`: the latest published version and every version's status.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstrumentOverview {
    pub key: String,
    pub owner: String,
    /// The latest published version; null when none is published.
    pub latest: Option<InstrumentVersion>,
    pub versions: Vec<VersionInfo>,
}
