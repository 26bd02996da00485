//! scoring: pure. Every function here is deterministic and total: no I/O, no async, no
//! database or HTTP types. It takes a validated instrument definition and answers and returns
//! a score, and holds the statistics the analytics use (sample SD, OLS slope, Cronbach's
//! alpha, the Reliable Change Index, rupture detection), as plain functions over slices.
//!
//! Arithmetic on answers is decimal, not binary floating point: answers on a 0.1 step that
//! add up to 36.0 total exactly 36.0, so a cut-off at 36 is compared exactly.

// Numeric code over slices whose indexes come from the loop ranges or the definition that
// sized them (validated on write); the property tests exercise these bounds.
#![allow(clippy::indexing_slicing)]

pub mod association;
pub mod definition;
pub mod expected;
pub mod outcome;
pub mod ruptures;
pub mod score;
pub mod stats;

pub use definition::{
    Band, Comparator, Cutoff, DefinitionParts, Direction, InstrumentDefinition, ItemDef, ItemFlag, Kind, Method,
    MissingPolicy, Norms, OutcomeRules, Rater, RuptureRule, RuptureRuleKind, Scale, SubscaleDef,
};
pub use score::{AnswerError, Score, ScoreOutcome, SubscaleScore, score};

use rust_decimal::Decimal;
use std::str::FromStr;

/// The exact decimal a JSON number denotes. `f64`'s `Display` prints the shortest text that
/// reads back as the same double, so 0.1 becomes exactly 0.1 (not 0.1000000000000000055...).
/// `None` for numbers a decimal cannot hold (beyond about 7.9e28): never a valid answer.
pub fn to_decimal(value: f64) -> Option<Decimal> {
    if !value.is_finite() {
        return None;
    }
    Decimal::from_str(&value.to_string()).ok()
}

/// `to - from`, exact at the totals' own precision (SRS 36.4 -> 35.5 is -0.9, not
/// -0.9000000000000057): both are decimal totals stored as their nearest doubles.
pub fn exact_change(from: f64, to: f64) -> f64 {
    match (to_decimal(from), to_decimal(to)) {
        (Some(f), Some(t)) => to_f64(t - f),
        _ => to - from,
    }
}

pub fn to_f64(value: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    value.to_f64().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_the_numbers_written() {
        assert_eq!(to_decimal(0.1).unwrap().to_string(), "0.1");
        assert_eq!(to_decimal(35.9).unwrap().to_string(), "35.9");
        assert!(to_decimal(1.7976931348623157e308).is_none());
        assert!(to_decimal(f64::NAN).is_none());
    }
}

#[cfg(test)]
mod builtin_tests;
