//! Change over a series, in the instrument's direction: the reliable-change class (by the
//! RCI of Jacobson & Truax 1991, or by fixed points such as the PHQ-9's 6), response (a
//! reduction from baseline) and remission (the latest total meets a comparison).
//! Comparisons are decimal-exact: 15 x 0.4 is exactly 6.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::definition::{Direction, InstrumentDefinition};
use super::stats::{RCI_CRITICAL, ReliableChange};
use super::to_decimal;

/// How the reliable-change class was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReliableChangeRule {
    /// |RCI| > 1.96, with the instrument's or the organisation's norms.
    Rci,
    /// |change| >= the definition's `reliable_change_points`.
    Points,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// `(latest - baseline) / S_diff` (its v1 sign, whatever the direction); None without norms.
    pub rci: Option<f64>,
    pub class: Option<ReliableChange>,
    pub rule: ReliableChangeRule,
}

/// The class of a change whose sign says rise (+) or fall (-), in the instrument's direction.
fn class_of(rise: bool, direction: Direction) -> ReliableChange {
    match (rise, direction) {
        (true, Direction::HigherIsBetter) | (false, Direction::LowerIsBetter) => ReliableChange::Improved,
        _ => ReliableChange::Deteriorated,
    }
}

/// Reliable change from baseline to latest. `s_diff` is the RCI's standard error of the
/// difference when norms exist.
pub fn assess_change(def: &InstrumentDefinition, baseline: f64, latest: f64, s_diff: Option<f64>) -> Change {
    let rci = s_diff.filter(|s| *s > 0.0).map(|s| (latest - baseline) / s);
    match def.outcome.reliable_change_points {
        Some(points) => {
            let change = match (to_decimal(baseline), to_decimal(latest)) {
                (Some(b), Some(l)) => Some(l - b),
                _ => None,
            };
            let class = change.map(|c| {
                if c.abs() >= points {
                    class_of(c > Decimal::ZERO, def.direction)
                } else {
                    ReliableChange::Unchanged
                }
            });
            Change {
                rci,
                class,
                rule: ReliableChangeRule::Points,
            }
        }
        None => Change {
            rci,
            class: rci.map(|r| {
                if r.abs() <= RCI_CRITICAL {
                    ReliableChange::Unchanged
                } else {
                    class_of(r > 0.0, def.direction)
                }
            }),
            rule: ReliableChangeRule::Rci,
        },
    }
}

/// Response: the improvement from baseline (oriented by the direction) is at least
/// `response_reduction x |baseline|`. None without the rule or with a baseline of 0.
pub fn response(def: &InstrumentDefinition, baseline: f64, latest: f64) -> Option<bool> {
    let reduction = def.outcome.response_reduction?;
    let (b, l) = (to_decimal(baseline)?, to_decimal(latest)?);
    if b.is_zero() {
        return None;
    }
    let improvement = def.direction.orientation() * (l - b);
    Some(improvement >= reduction * b.abs())
}

/// Remission: the latest total meets the definition's comparison. None without the rule.
pub fn remission(def: &InstrumentDefinition, latest: f64) -> Option<bool> {
    let rule = def.outcome.remission?;
    Some(rule.comparator.holds(to_decimal(latest)?, rule.value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::{Comparator, Cutoff, OutcomeRules};

    fn phq9_like() -> InstrumentDefinition {
        let mut def = crate::scoring::builtin_tests::definition_of("phq-9");
        def.outcome = OutcomeRules {
            response_reduction: Some(Decimal::new(5, 1)),
            remission: Some(Cutoff {
                value: Decimal::from(5),
                comparator: Comparator::Lt,
            }),
            reliable_change_points: Some(Decimal::from(6)),
        };
        def
    }

    #[test]
    fn a_fall_is_improvement_when_lower_is_better() {
        let def = phq9_like();
        let c = assess_change(&def, 18.0, 4.0, None);
        assert_eq!(
            (c.class, c.rule),
            (Some(ReliableChange::Improved), ReliableChangeRule::Points)
        );
        assert_eq!(
            assess_change(&def, 10.0, 16.0, None).class,
            Some(ReliableChange::Deteriorated)
        );
        // 5 points is short of 6; exactly 6 is reliable.
        assert_eq!(
            assess_change(&def, 10.0, 5.0, None).class,
            Some(ReliableChange::Unchanged)
        );
        assert_eq!(
            assess_change(&def, 10.0, 4.0, None).class,
            Some(ReliableChange::Improved)
        );
    }

    #[test]
    fn the_rci_keeps_its_sign_and_the_class_follows_the_direction() {
        let mut def = phq9_like();
        def.outcome.reliable_change_points = None;
        let c = assess_change(&def, 18.0, 8.0, Some(3.0));
        assert!(c.rci.is_some_and(|r| r < -1.96));
        assert_eq!(
            (c.class, c.rule),
            (Some(ReliableChange::Improved), ReliableChangeRule::Rci)
        );
        assert_eq!(assess_change(&def, 18.0, 8.0, None).class, None);
    }

    #[test]
    fn response_and_remission_are_decimal_exact() {
        let def = phq9_like();
        assert_eq!(response(&def, 18.0, 9.0), Some(true)); // 9 >= 0.5 x 18
        assert_eq!(response(&def, 18.0, 9.1), Some(false));
        assert_eq!(response(&def, 18.0, 18.0), Some(false)); // one point: no change
        assert_eq!(response(&def, 0.0, 0.0), None);
        let mut forty = def.clone();
        forty.outcome.response_reduction = Some(Decimal::new(4, 1));
        assert_eq!(response(&forty, 15.0, 9.0), Some(true)); // 15 x 0.4 is exactly 6
        assert_eq!(remission(&def, 4.0), Some(true));
        assert_eq!(remission(&def, 5.0), Some(false));
    }

    #[test]
    fn higher_is_better_outcomes_improve_upwards() {
        let mut def = phq9_like();
        def.direction = Direction::HigherIsBetter;
        assert_eq!(
            assess_change(&def, 4.0, 18.0, None).class,
            Some(ReliableChange::Improved)
        );
        assert_eq!(response(&def, 8.0, 12.0), Some(true));
        assert_eq!(response(&def, 18.0, 4.0), Some(false));
    }
}
