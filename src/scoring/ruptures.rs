//! Alliance ruptures and their repair (reliable_drop: a fall of at least 1.96 S_diff; sd_drop: Stiles 2004 / Strauss 2006, a fall of k SDs of the earlier points), over one patient's totals in
//! time order (same instrument and rater; ties already broken by creation order).

use super::definition::{RuptureRule, RuptureRuleKind};
use super::stats::{RCI_CRITICAL, sample_sd};

#[derive(Debug, Clone, PartialEq)]
pub struct RuptureFound {
    /// Position of the point that dropped.
    pub index: usize,
    pub from: f64,
    pub to: f64,
    pub drop: f64,
    /// The rule that fired (`sd_drop` when `reliable_drop` had no norms to work with).
    pub rule: RuptureRuleKind,
    /// Position of the first later point, within the repair window, back at `from` or above.
    pub repaired_by: Option<usize>,
}

/// Finds ruptures. `s_diff` is the RCI's standard error of the difference when norms exist.
pub fn detect_ruptures(totals: &[f64], rule: &RuptureRule, s_diff: Option<f64>) -> Vec<RuptureFound> {
    let mut found = Vec::new();
    for i in 1..totals.len() {
        let (from, to) = (totals[i - 1], totals[i]);
        let drop = from - to;
        let fired = match (rule.kind, s_diff) {
            (RuptureRuleKind::ReliableDrop, Some(s)) if s > 0.0 => {
                (drop >= RCI_CRITICAL * s).then_some(RuptureRuleKind::ReliableDrop)
            }
            // reliable_drop without norms falls back to sd_drop.
            _ => sd_drop_fires(&totals[..i], drop, rule.k, rule.min_sd).then_some(RuptureRuleKind::SdDrop),
        };
        if let Some(kind) = fired {
            let window_end = (i + rule.repair_window).min(totals.len() - 1);
            let repaired_by = (i + 1..=window_end).find(|&j| totals[j] >= from);
            found.push(RuptureFound {
                index: i,
                from,
                to,
                drop,
                rule: kind,
                repaired_by,
            });
        }
    }
    found
}

/// Stiles et al. 2004 (k = 2), Strauss et al. 2006 (k = 1): at least 3 earlier points, and a
/// drop of at least k x max(their sample SD, `min_sd`). The floor matters for a new clinic's
/// typical series: a perfectly stable history (SD 0) followed by a crash is a rupture.
fn sd_drop_fires(earlier: &[f64], drop: f64, k: f64, min_sd: f64) -> bool {
    if earlier.len() < 3 {
        return false;
    }
    match sample_sd(earlier).map(|sd| sd.max(min_sd)) {
        Some(sd) if sd > 0.0 => drop >= k * sd,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::definition::DEFAULT_MIN_SD;

    fn rule(kind: RuptureRuleKind, k: f64, window: usize) -> RuptureRule {
        RuptureRule {
            kind,
            k,
            repair_window: window,
            min_sd: DEFAULT_MIN_SD,
        }
    }

    #[test]
    fn reliable_drop_repaired_inside_the_window() {
        // S_diff 3.5777 -> threshold 7.012. 52 -> 40 drops 12; 45, 53: repaired by index 3.
        let found = detect_ruptures(
            &[52.0, 40.0, 45.0, 53.0],
            &rule(RuptureRuleKind::ReliableDrop, 2.0, 3),
            Some(3.5777),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].index, found[0].drop, found[0].repaired_by),
            (1, 12.0, Some(3))
        );
        assert_eq!(found[0].rule, RuptureRuleKind::ReliableDrop);
    }

    #[test]
    fn repair_outside_the_window_does_not_count() {
        let found = detect_ruptures(
            &[52.0, 40.0, 41.0, 42.0, 52.0],
            &rule(RuptureRuleKind::ReliableDrop, 2.0, 2),
            Some(3.5777),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].repaired_by, None);
    }

    #[test]
    fn sd_drop_needs_three_earlier_points() {
        let r = rule(RuptureRuleKind::SdDrop, 2.0, 3);
        // Two earlier points: never a rupture, however large the drop.
        assert!(detect_ruptures(&[50.0, 52.0, 20.0], &r, None).is_empty());
        // Earlier 50, 52, 51: SD 1, so a drop of 2 or more fires (k = 2).
        let found = detect_ruptures(&[50.0, 52.0, 51.0, 49.0], &r, None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, RuptureRuleKind::SdDrop);
        assert!(detect_ruptures(&[50.0, 52.0, 51.0, 49.5], &r, None).is_empty());
    }

    #[test]
    fn a_crash_after_a_perfectly_stable_history_is_a_rupture() {
        // 48, 48, 48 have SD 0; the floor of 1 point makes 12 a drop of 36 >= 2 x 1.
        let r = rule(RuptureRuleKind::SdDrop, 2.0, 3);
        let found = detect_ruptures(&[48.0, 48.0, 48.0, 12.0, 48.0], &r, None);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].index, found[0].drop, found[0].repaired_by),
            (3, 36.0, Some(4))
        );
        // The floor also holds small drops back: 50, 50, 50, 49 drops 1 < 2 x 1.
        assert!(detect_ruptures(&[50.0, 50.0, 50.0, 49.0], &r, None).is_empty());
        // With the floor set to 0 an SD of 0 never fires (the v1 rule).
        let no_floor = RuptureRule { min_sd: 0.0, ..r };
        assert!(detect_ruptures(&[48.0, 48.0, 48.0, 12.0], &no_floor, None).is_empty());
        // reliable_drop without norms falls back to sd_drop with the same floor.
        let reliable = rule(RuptureRuleKind::ReliableDrop, 2.0, 3);
        assert_eq!(detect_ruptures(&[48.0, 48.0, 48.0, 12.0], &reliable, None).len(), 1);
    }

    #[test]
    fn reliable_drop_without_norms_falls_back_to_sd_drop() {
        let found = detect_ruptures(
            &[50.0, 52.0, 51.0, 49.0],
            &rule(RuptureRuleKind::ReliableDrop, 2.0, 3),
            None,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, RuptureRuleKind::SdDrop);
    }
}
