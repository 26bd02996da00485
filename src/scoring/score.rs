//! Scoring one administration: answer checks, reverse keying, subscale totals and means,
//! proration under the missing-item policy, total, mean, POMP and flags (reverse keying: scale min + max - raw; proration: a subscale's answered mean x its item count).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::definition::{InstrumentDefinition, Method};
use super::to_f64;

pub const FLAG_BELOW_CUTOFF: &str = "below_cutoff";
pub const FLAG_ITEM_BELOW_THRESHOLD: &str = "item_below_threshold";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscaleScore {
    pub total: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Score {
    /// Sum of the (prorated) subscale totals, or the mean of answered items x item count.
    pub total: f64,
    /// total / item count.
    pub mean: f64,
    /// Percent of maximum possible: 100 x (total - min possible) / (max possible - min possible).
    pub pomp: f64,
    pub subscales: BTreeMap<String, SubscaleScore>,
    pub answered: u32,
    pub missing: u32,
    pub prorated: bool,
    /// `below_cutoff` (the interpretation cut-off holds for the total or mean, per the method),
    /// `item_below_threshold` (an item scored under the per-item threshold), and the
    /// definition's item flags (e.g. `item_9_positive`) raised by raw answers.
    pub flags: Vec<String>,
    /// The label of the interpretation band holding the total; null without one.
    pub band: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScoreOutcome {
    Scored(Score),
    /// Too many missing items for the policy; the reason says which limit was passed. The
    /// item flags raised by the answers given still hold: a safety flag never waits for a score.
    Unscored {
        reason: String,
        flags: Vec<String>,
    },
}

impl ScoreOutcome {
    /// Every flag the response has: the score's flags when scored, the item flags otherwise.
    pub fn flags(&self) -> &[String] {
        match self {
            ScoreOutcome::Scored(score) => &score.flags,
            ScoreOutcome::Unscored { flags, .. } => flags,
        }
    }
}

/// One bad answer, by item id (the caller turns it into a JSON pointer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerError {
    pub item_id: String,
    pub detail: String,
}

/// Checks every answer and returns them by item position (`None` = missing). Every problem
/// is reported, not only the first: unknown item ids, wrong types, out of range, off step.
pub fn parse_answers(
    def: &InstrumentDefinition,
    answers: &BTreeMap<String, serde_json::Value>,
) -> Result<Vec<Option<Decimal>>, Vec<AnswerError>> {
    let mut values = vec![None; def.items.len()];
    let mut errors = Vec::new();
    let scale = &def.scale;
    for (id, value) in answers {
        let error = |detail: String| AnswerError {
            item_id: id.clone(),
            detail,
        };
        let Some(position) = def.item_position(id) else {
            errors.push(error("unknown item id".into()));
            continue;
        };
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::Number(n) => match n.as_f64().and_then(|v| def.scale_point(v)) {
                Some(v) => values[position] = Some(v),
                _ => errors.push(error(format!(
                    "must be a number from {} to {} in steps of {}",
                    scale.min.normalize(),
                    scale.max.normalize(),
                    scale.step.normalize()
                ))),
            },
            _ => errors.push(error("must be a number or null".into())),
        }
    }
    if errors.is_empty() { Ok(values) } else { Err(errors) }
}

/// Scores checked answers (by item position, `None` = missing).
pub fn score_values(def: &InstrumentDefinition, values: &[Option<Decimal>]) -> ScoreOutcome {
    let scale = &def.scale;
    let scored: Vec<Option<Decimal>> = def
        .items
        .iter()
        .zip(values)
        .map(|(item, v)| v.map(|raw| if item.reverse { scale.reverse(raw) } else { raw }))
        .collect();
    let n_items = def.items.len();
    let answered = scored.iter().filter(|v| v.is_some()).count();
    let missing = n_items - answered;

    let unscored = |reason: String| ScoreOutcome::Unscored {
        reason,
        flags: item_flags(def, values),
    };
    let max_total = def.missing.max_total.unwrap_or(0) as usize;
    if missing > max_total {
        return unscored(format!(
            "{missing} items missing; the instrument allows at most {max_total}"
        ));
    }

    let mut subscales = BTreeMap::new();
    let mut subscale_sum = Decimal::ZERO;
    for sub in &def.subscales {
        let answered_values: Vec<Decimal> = sub.items.iter().filter_map(|&i| scored[i]).collect();
        let sub_missing = sub.items.len() - answered_values.len();
        let allowed = def.missing.max_per_subscale.unwrap_or(0) as usize;
        if sub_missing > allowed || answered_values.is_empty() {
            return unscored(format!(
                "subscale `{}` misses {sub_missing} of {} items; at most {allowed} allowed",
                sub.key,
                sub.items.len()
            ));
        }
        let total = prorated_total(&answered_values, sub.items.len());
        subscale_sum += total;
        let mean = total / Decimal::from(sub.items.len());
        subscales.insert(
            sub.key.clone(),
            SubscaleScore {
                total: to_f64(total),
                mean: to_f64(mean),
            },
        );
    }

    let answered_values: Vec<Decimal> = scored.iter().flatten().copied().collect();
    if answered_values.is_empty() {
        return unscored("no item answered".into());
    }
    let total = if def.subscales_cover_all_items() {
        subscale_sum
    } else {
        prorated_total(&answered_values, n_items)
    };
    let mean = total / Decimal::from(n_items);
    let (min_total, max_total) = (def.min_total(), def.max_total());
    let pomp = Decimal::from(100) * (total - min_total) / (max_total - min_total);

    let mut flags = Vec::new();
    if let Some(cutoff) = def.cutoff {
        let compared = match def.method {
            Method::Sum => total,
            Method::Mean => mean,
        };
        if cutoff.comparator.holds(compared, cutoff.value) {
            flags.push(FLAG_BELOW_CUTOFF.to_string());
        }
    }
    if let Some(threshold) = def.item_threshold
        && answered_values.iter().any(|v| *v < threshold)
    {
        flags.push(FLAG_ITEM_BELOW_THRESHOLD.to_string());
    }
    for flag in item_flags(def, values) {
        if !flags.contains(&flag) {
            flags.push(flag);
        }
    }

    ScoreOutcome::Scored(Score {
        total: to_f64(total),
        mean: to_f64(mean),
        pomp: to_f64(pomp),
        subscales,
        answered: answered as u32,
        missing: missing as u32,
        prorated: missing > 0,
        flags,
        band: def.band_of(total).map(str::to_string),
    })
}

/// Checks and scores answers keyed by item id.
pub fn score(
    def: &InstrumentDefinition,
    answers: &BTreeMap<String, serde_json::Value>,
) -> Result<ScoreOutcome, Vec<AnswerError>> {
    parse_answers(def, answers).map(|values| score_values(def, &values))
}

/// Sum when complete; otherwise the mean of the answered items x the item count.
fn prorated_total(answered: &[Decimal], item_count: usize) -> Decimal {
    let sum: Decimal = answered.iter().sum();
    if answered.len() == item_count {
        sum
    } else {
        sum * Decimal::from(item_count) / Decimal::from(answered.len())
    }
}

/// The definition's item flags the raw answers raise (before reverse keying), in definition
/// order, each once; an unanswered item never raises one. Computed whether or not the
/// response can be scored.
pub fn item_flags(def: &InstrumentDefinition, values: &[Option<Decimal>]) -> Vec<String> {
    let mut flags: Vec<String> = Vec::new();
    for f in &def.item_flags {
        if let Some(Some(raw)) = values.get(f.item)
            && f.comparator.holds(*raw, f.value)
            && !flags.contains(&f.flag)
        {
            flags.push(f.flag.clone());
        }
    }
    flags
}
