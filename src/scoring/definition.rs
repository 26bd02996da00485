//! A validated instrument definition in the form scoring needs: items by position, each
//! subscale's item positions, exact scale bounds. Built only by the instruments validator,
//! so every invariant below holds (min < max, step divides the range, subscales non-empty).

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Rater {
    Patient,
    Clinician,
    Observer,
}

impl Rater {
    pub const ALL: [Rater; 3] = [Rater::Patient, Rater::Clinician, Rater::Observer];

    pub fn as_str(self) -> &'static str {
        match self {
            Rater::Patient => "patient",
            Rater::Clinician => "clinician",
            Rater::Observer => "observer",
        }
    }

    pub fn parse(s: &str) -> Option<Rater> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What an instrument measures: the relationship, or a symptom or functioning outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Alliance,
    Outcome,
}

/// Which way is better. Reliable change, response and the alliance-outcome orientation
/// follow it: for `lower_is_better`, a fall is `improved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    HigherIsBetter,
    LowerIsBetter,
}

impl Direction {
    /// +1 or -1: `orientation x (later - earlier)` is positive for an improvement.
    pub fn orientation(self) -> Decimal {
        match self {
            Direction::HigherIsBetter => Decimal::ONE,
            Direction::LowerIsBetter => Decimal::NEGATIVE_ONE,
        }
    }
}

/// An inclusive range of totals with its label (PHQ-9 10-14: moderate).
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub min: Decimal,
    pub max: Decimal,
    pub label: String,
}

/// A flag raised when one item's raw answer meets a comparison (PHQ-9 item 9 >= 1).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemFlag {
    /// Position in `InstrumentDefinition::items`.
    pub item: usize,
    pub comparator: Comparator,
    pub value: Decimal,
    pub flag: String,
}

/// Treatment-outcome rules: response (a reduction from baseline), remission (the latest
/// total meets a comparison) and a fixed-point reliable change.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OutcomeRules {
    /// In (0, 1]: response when the oriented improvement >= this x |baseline|.
    pub response_reduction: Option<Decimal>,
    pub remission: Option<Cutoff>,
    /// Reliable change by |change| >= points instead of the RCI.
    pub reliable_change_points: Option<Decimal>,
}

/// Which of total and mean the interpretation cut-off is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Sum,
    Mean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparator {
    pub fn parse(s: &str) -> Option<Comparator> {
        match s {
            "lt" => Some(Comparator::Lt),
            "le" => Some(Comparator::Le),
            "gt" => Some(Comparator::Gt),
            "ge" => Some(Comparator::Ge),
            _ => None,
        }
    }

    /// True when `value` meets the cut-off condition (`value <comparator> cutoff`).
    pub fn holds(self, value: Decimal, cutoff: Decimal) -> bool {
        match self {
            Comparator::Lt => value < cutoff,
            Comparator::Le => value <= cutoff,
            Comparator::Gt => value > cutoff,
            Comparator::Ge => value >= cutoff,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cutoff {
    pub value: Decimal,
    pub comparator: Comparator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub min: Decimal,
    pub max: Decimal,
    pub step: Decimal,
}

impl Scale {
    pub fn contains(&self, v: Decimal) -> bool {
        v >= self.min && v <= self.max && ((v - self.min) % self.step).is_zero()
    }

    /// Reverse keying: `scored = scale_min + scale_max - raw`.
    pub fn reverse(&self, raw: Decimal) -> Decimal {
        self.min + self.max - raw
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemDef {
    pub id: String,
    /// Position in `InstrumentDefinition::subscales`.
    pub subscale: Option<usize>,
    pub reverse: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscaleDef {
    pub key: String,
    /// Positions in `InstrumentDefinition::items`; never empty.
    pub items: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MissingPolicy {
    /// How many items each subscale may miss (`None`: none).
    pub max_per_subscale: Option<u32>,
    /// How many items may be missing in all (`None`: none).
    pub max_total: Option<u32>,
}

/// SD and test-retest/internal-consistency reliability for the Reliable Change Index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Norms {
    pub sd: f64,
    pub reliability: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuptureRuleKind {
    /// Drop of at least 1.96 x S_diff between consecutive points.
    ReliableDrop,
    /// Drop of at least k x SD of all earlier points (Stiles 2004: k = 2; Strauss 2006: k = 1).
    SdDrop,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuptureRule {
    pub kind: RuptureRuleKind,
    pub k: f64,
    pub repair_window: usize,
    /// The floor of the SD that `sd_drop` (and the `reliable_drop` fallback) compares with.
    pub min_sd: f64,
}

/// One point of the total: the `sd_drop` floor when a definition sets none.
pub const DEFAULT_MIN_SD: f64 = 1.0;

/// Everything a definition holds, as the validator assembles it.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionParts {
    pub kind: Kind,
    pub direction: Direction,
    pub raters: Vec<Rater>,
    pub scale: Scale,
    pub items: Vec<ItemDef>,
    pub subscales: Vec<SubscaleDef>,
    pub method: Method,
    pub missing: MissingPolicy,
    pub cutoff: Option<Cutoff>,
    pub item_threshold: Option<Decimal>,
    pub bands: Vec<Band>,
    pub item_flags: Vec<ItemFlag>,
    pub outcome: OutcomeRules,
    pub norms: Option<Norms>,
    pub rupture: Option<RuptureRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstrumentDefinition {
    pub kind: Kind,
    pub direction: Direction,
    pub raters: Vec<Rater>,
    pub scale: Scale,
    pub items: Vec<ItemDef>,
    pub subscales: Vec<SubscaleDef>,
    pub method: Method,
    pub missing: MissingPolicy,
    pub cutoff: Option<Cutoff>,
    pub item_threshold: Option<Decimal>,
    /// Sorted, not overlapping, inside the possible totals.
    pub bands: Vec<Band>,
    pub item_flags: Vec<ItemFlag>,
    pub outcome: OutcomeRules,
    /// Only when both SD and reliability are set.
    pub norms: Option<Norms>,
    /// None: no rupture detection (outcome instruments normally have none).
    pub rupture: Option<RuptureRule>,
    item_index: HashMap<String, usize>,
    /// The nearest double of every scale point, when the scale has at most `MAX_GRID` points.
    grid: Vec<f64>,
}

/// Scales with more points than this are checked through exact decimal parsing instead.
const MAX_GRID: i64 = 100_000;

impl InstrumentDefinition {
    /// True when totals of `other` are on this definition's scale: the same scale (min, max,
    /// step), the same item ids in the same order and the same scoring method. Only such
    /// versions' points share a series (a trend never mixes a 1-5 mean with a 0-100 score).
    pub fn shares_scale_with(&self, other: &InstrumentDefinition) -> bool {
        self.scale == other.scale
            && self.method == other.method
            && self.items.len() == other.items.len()
            && self.items.iter().zip(&other.items).all(|(a, b)| a.id == b.id)
    }

    pub fn new(parts: DefinitionParts) -> Self {
        let DefinitionParts {
            kind,
            direction,
            raters,
            scale,
            items,
            subscales,
            method,
            missing,
            cutoff,
            item_threshold,
            bands,
            item_flags,
            outcome,
            norms,
            rupture,
        } = parts;
        let item_index = items.iter().enumerate().map(|(i, item)| (item.id.clone(), i)).collect();
        let points = ((scale.max - scale.min) / scale.step).trunc();
        let grid = match i64::try_from(points) {
            Ok(n) if n <= MAX_GRID => (0..=n)
                .map(|k| super::to_f64(scale.min + scale.step * Decimal::from(k)))
                .collect(),
            _ => Vec::new(),
        };
        InstrumentDefinition {
            kind,
            direction,
            raters,
            scale,
            items,
            subscales,
            method,
            missing,
            cutoff,
            item_threshold,
            bands,
            item_flags,
            outcome,
            norms,
            rupture,
            item_index,
            grid,
        }
    }

    /// The label of the band holding `total` (inclusive ranges), if any.
    pub fn band_of(&self, total: Decimal) -> Option<&str> {
        self.bands
            .iter()
            .find(|b| total >= b.min && total <= b.max)
            .map(|b| b.label.as_str())
    }

    /// The scale point a JSON number denotes, or `None` when it is off the scale or its step.
    /// A number is the point whose nearest double it is (what reading its shortest decimal
    /// text would conclude, without formatting and parsing text on the ingest path).
    pub fn scale_point(&self, value: f64) -> Option<Decimal> {
        if !value.is_finite() {
            return None;
        }
        if self.grid.is_empty() {
            return super::to_decimal(value).filter(|d| self.scale.contains(*d));
        }
        let (first, last) = (self.grid[0], self.grid[self.grid.len() - 1]);
        if value < first || value > last {
            return None;
        }
        let k = ((value - first) / (last - first) * (self.grid.len() - 1) as f64).round() as usize;
        (self.grid.get(k) == Some(&value)).then(|| self.scale.min + self.scale.step * Decimal::from(k))
    }

    pub fn item_position(&self, id: &str) -> Option<usize> {
        self.item_index.get(id).copied()
    }

    /// True when every item belongs to a subscale (the total is then the sum of subscales).
    pub fn subscales_cover_all_items(&self) -> bool {
        !self.subscales.is_empty() && self.items.iter().all(|i| i.subscale.is_some())
    }

    pub fn min_total(&self) -> Decimal {
        self.scale.min * Decimal::from(self.items.len())
    }

    pub fn max_total(&self) -> Decimal {
        self.scale.max * Decimal::from(self.items.len())
    }
}
