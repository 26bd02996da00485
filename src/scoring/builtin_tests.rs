//! Hand-computed vectors for every built-in (the published worked examples and more), and
//! properties that must hold for any definition and any answers.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::score::{FLAG_BELOW_CUTOFF, FLAG_ITEM_BELOW_THRESHOLD};
use super::*;
use crate::instruments::model::NewInstrument;
use crate::instruments::validate::validate;

fn spec(key: &str) -> NewInstrument {
    crate::instruments::builtin::definitions()
        .unwrap()
        .into_iter()
        .find(|d| d.key == key)
        .unwrap()
}

pub(crate) fn definition_of(key: &str) -> InstrumentDefinition {
    def(key)
}

fn def(key: &str) -> InstrumentDefinition {
    validate(&spec(key)).unwrap()
}

fn answers(values: &[Value]) -> BTreeMap<String, Value> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| ((i + 1).to_string(), v.clone()))
        .collect()
}

fn nums(values: &[f64]) -> BTreeMap<String, Value> {
    answers(&values.iter().map(|v| json!(v)).collect::<Vec<_>>())
}

fn scored(d: &InstrumentDefinition, a: &BTreeMap<String, Value>) -> Score {
    match score(d, a).unwrap() {
        ScoreOutcome::Scored(s) => s,
        other => panic!("expected a score, got {other:?}"),
    }
}

fn unscored(d: &InstrumentDefinition, a: &BTreeMap<String, Value>) -> String {
    unscored_with_flags(d, a).0
}

fn unscored_with_flags(d: &InstrumentDefinition, a: &BTreeMap<String, Value>) -> (String, Vec<String>) {
    match score(d, a).unwrap() {
        ScoreOutcome::Unscored { reason, flags } => (reason, flags),
        other => panic!("expected no score, got {other:?}"),
    }
}

#[test]
fn wai_sr_worked_check() {
    let s = scored(&def("wai-sr"), &nums(&[1., 2., 3., 4., 5., 1., 2., 3., 4., 5., 1., 2.]));
    assert_eq!(s.subscales["task"].total, 10.0);
    assert_eq!(s.subscales["goal"].total, 9.0);
    assert_eq!(s.subscales["bond"].total, 14.0);
    assert_eq!(s.subscales["task"].mean, 2.5);
    assert_eq!(s.total, 33.0);
    assert_eq!(s.mean, 2.75);
    assert_eq!(s.pomp, 43.75); // 100 x (33 - 12) / (60 - 12)
    assert_eq!((s.answered, s.missing, s.prorated), (12, 0, false));
    assert!(s.flags.is_empty());
}

#[test]
fn wai_sr_prorates_one_missing_item_per_subscale_and_no_more() {
    let d = def("wai-sr");
    // Item 1 (task) missing: task = mean(2, 5, 2) x 4 = 12.
    let mut a = nums(&[1., 2., 3., 4., 5., 1., 2., 3., 4., 5., 1., 2.]);
    a.insert("1".into(), Value::Null);
    let s = scored(&d, &a);
    assert_eq!(s.subscales["task"].total, 12.0);
    assert_eq!(s.total, 12.0 + 9.0 + 14.0);
    assert_eq!((s.answered, s.missing, s.prorated), (11, 1, true));
    // One missing in each subscale: at the limit (3 in all).
    a.remove("4");
    a.remove("3");
    assert!(scored(&d, &a).prorated);
    // A fourth missing item: one past the total limit.
    a.remove("2");
    assert!(unscored(&d, &a).contains("at most 3"));
    // Two task items missing (two in all): one past the per-subscale limit.
    let mut a = nums(&[1., 2., 3., 4., 5., 1., 2., 3., 4., 5., 1., 2.]);
    a.remove("1");
    a.remove("2");
    assert!(unscored(&d, &a).contains("task"));
}

#[test]
fn wai_s_reverse_keys_items_4_and_10() {
    let d = def("wai-s");
    let s = scored(&d, &nums(&[7.0; 12]));
    assert_eq!(s.total, 72.0); // 10 x 7 + 2 x 1
    assert_eq!(s.subscales["goal"].total, 7.0 + 1.0 + 1.0 + 7.0);
    let s = scored(&d, &nums(&[1.0; 12]));
    assert_eq!(s.total, 10.0 + 14.0);
}

#[test]
fn haq_ii_reverse_items_and_two_missing_allowed() {
    let d = def("haq-ii");
    assert_eq!(scored(&d, &nums(&[6.0; 19])).total, 89.0); // 14 x 6 + 5 x 1
    let mut a = nums(&[6.0; 19]);
    a.remove("1");
    a.remove("4");
    // Answered: 13 x 6 (not reversed) + 4 x 1 (reversed) = 82 over 17 items, x 19.
    let s = scored(&d, &a);
    assert!((s.total - 82.0 / 17.0 * 19.0).abs() < 1e-12);
    assert!(s.prorated);
    a.remove("5");
    assert!(unscored(&d, &a).contains("at most 2"));
}

#[test]
fn srs_cutoff_is_exact_at_36() {
    let d = def("srs");
    let s = scored(&d, &nums(&[9.0, 9.0, 9.0, 9.0]));
    assert_eq!(s.total, 36.0);
    assert!(!s.flags.contains(&FLAG_BELOW_CUTOFF.to_string()));
    // 8.7 + 9.1 + 9.1 + 9.1 is 36.00000000000001 in binary floating point; here it is 36.0.
    let s = scored(&d, &nums(&[8.7, 9.1, 9.1, 9.1]));
    assert_eq!(s.total, 36.0);
    assert!(!s.flags.contains(&FLAG_BELOW_CUTOFF.to_string()));
    assert!(s.flags.contains(&FLAG_ITEM_BELOW_THRESHOLD.to_string()), "8.7 < 9");
    let s = scored(&d, &nums(&[9.0, 9.0, 9.0, 8.9]));
    assert_eq!(s.total, 35.9);
    assert!(s.flags.contains(&FLAG_BELOW_CUTOFF.to_string()));
    let s = scored(&d, &nums(&[9.0, 9.0, 9.0, 9.1]));
    assert_eq!(s.total, 36.1);
    assert!(s.flags.is_empty());
}

#[test]
fn srs_cutoff_with_le() {
    let mut spec = spec("srs");
    spec.interpretation.cutoff.as_mut().unwrap().comparator = "le".into();
    let d = validate(&spec).unwrap();
    let flagged = |v: &[f64]| scored(&d, &nums(v)).flags.contains(&FLAG_BELOW_CUTOFF.to_string());
    assert!(flagged(&[9.0, 9.0, 9.0, 8.9]));
    assert!(flagged(&[9.0, 9.0, 9.0, 9.0]));
    assert!(!flagged(&[9.0, 9.0, 9.0, 9.1]));
}

#[test]
fn srs_allows_no_missing_item() {
    let d = def("srs");
    let mut a = nums(&[9.0, 9.0, 9.0, 9.0]);
    a.insert("4".into(), Value::Null);
    unscored(&d, &a);
}

#[test]
fn pdrq_9_compares_the_mean() {
    let d = def("pdrq-9");
    let s = scored(&d, &nums(&[3.0; 9]));
    assert_eq!((s.total, s.mean), (27.0, 3.0));
    assert_eq!(s.flags, vec![FLAG_BELOW_CUTOFF.to_string()]);
    let s = scored(
        &d,
        &nums(&[4.0, 3.0, 4.0, 3.0, 4.0, 3.0, 4.0, 3.0, 3.5_f64.floor() + 1.0]),
    );
    assert_eq!(s.total, 32.0);
    assert!(s.mean >= 3.5 && s.flags.is_empty());
}

#[test]
fn every_bad_answer_is_named() {
    let d = def("srs");
    let mut a = BTreeMap::new();
    a.insert("1".to_string(), json!(9.05)); // off the 0.1 step
    a.insert("2".to_string(), json!(10.5)); // out of range
    a.insert("3".to_string(), json!("9")); // wrong type
    a.insert("4".to_string(), json!(1.7976931348623157e308)); // absurd
    a.insert("5".to_string(), json!(9)); // unknown item
    a.insert("x".to_string(), json!(true)); // unknown item, wrong type
    let errors = score(&d, &a).unwrap_err();
    let ids: Vec<&str> = errors.iter().map(|e| e.item_id.as_str()).collect();
    assert_eq!(ids, vec!["1", "2", "3", "4", "5", "x"]);
    let d = def("wai-sr");
    let e = score(&d, &nums(&[1.5; 12])).unwrap_err();
    assert_eq!(e.len(), 12, "Likert items take whole numbers only");
}

/// A custom shape of the kind the README describes: 12 items on 0-4, three subscales, three
/// reverse-keyed items.
pub fn custom_spec() -> NewInstrument {
    serde_json::from_value(json!({
        "key": "arm-12-like", "title": "Custom alliance measure",
        "raters": ["patient", "clinician"],
        "scale": {"min": 0, "max": 4, "step": 1, "labels": {"0": "Not at all", "4": "Very much"}},
        "items": (1..=12).map(|i| {
            let subscale = ["bond", "partnership", "confidence"][(i - 1) / 4];
            let reverse = [3, 7, 11].contains(&i);
            json!({"id": format!("q{i}"), "subscale": subscale, "reverse": reverse})
        }).collect::<Vec<_>>(),
        "subscales": [{"key": "bond", "title": "Bond"}, {"key": "partnership", "title": "Partnership"},
                      {"key": "confidence", "title": "Confidence"}],
        "scoring": {"method": "sum", "missing": {"max_per_subscale": 1, "max_total": 2}},
        "interpretation": {"cutoff": {"value": 24, "comparator": "lt"}},
        "norms": {"sd": 8.0, "reliability": 0.9}
    }))
    .unwrap()
}

#[test]
fn custom_instrument_with_reverse_items() {
    let d = validate(&custom_spec()).unwrap();
    let a: BTreeMap<String, Value> = (1..=12).map(|i| (format!("q{i}"), json!(4))).collect();
    let s = scored(&d, &a);
    // 9 x 4 + 3 x 0 = 36; each subscale 3 x 4 + 0 = 12.
    assert_eq!(s.total, 36.0);
    assert_eq!(s.subscales["bond"].total, 12.0);
    assert_eq!(s.pomp, 75.0);
    assert!(s.flags.is_empty());
    let a: BTreeMap<String, Value> = (1..=12).map(|i| (format!("q{i}"), json!(0))).collect();
    let s = scored(&d, &a);
    assert_eq!(s.total, 12.0);
    assert_eq!(s.flags, vec![FLAG_BELOW_CUTOFF.to_string()]);
}

fn complete_answers(d: &InstrumentDefinition) -> impl Strategy<Value = Vec<Decimal>> {
    let steps = ((d.scale.max - d.scale.min) / d.scale.step).trunc();
    let steps: i64 = steps.try_into().unwrap();
    let (min, step) = (d.scale.min, d.scale.step);
    proptest::collection::vec(0..=steps, d.items.len())
        .prop_map(move |ks| ks.into_iter().map(|k| min + step * Decimal::from(k)).collect())
}

fn as_json(d: &InstrumentDefinition, values: &[Decimal]) -> BTreeMap<String, Value> {
    d.items
        .iter()
        .zip(values)
        .map(|(i, v)| (i.id.clone(), json!(to_f64(*v))))
        .collect()
}

fn all_definitions() -> Vec<InstrumentDefinition> {
    let mut defs: Vec<InstrumentDefinition> = ["wai-sr", "wai-s", "srs", "haq-ii", "pdrq-9"]
        .iter()
        .map(|k| def(k))
        .collect();
    defs.push(validate(&custom_spec()).unwrap());
    defs
}

proptest! {
    #[test]
    fn complete_totals_lie_within_the_possible_range(which in 0usize..6, ks in proptest::collection::vec(0i64..=1000, 19)) {
        let d = &all_definitions()[which];
        let steps: i64 = ((d.scale.max - d.scale.min) / d.scale.step).trunc().try_into().unwrap();
        let values: Vec<Decimal> =
            ks.iter().take(d.items.len()).map(|k| d.scale.min + d.scale.step * Decimal::from(k % (steps + 1))).collect();
        let s = scored(d, &as_json(d, &values));
        prop_assert!(s.total >= to_f64(d.min_total()) && s.total <= to_f64(d.max_total()));
        prop_assert!((0.0..=100.0).contains(&s.pomp));
        prop_assert!(!s.prorated && s.missing == 0);
    }

    #[test]
    fn reversing_twice_is_identity(k in 0i64..=100) {
        for d in all_definitions() {
            let v = (d.scale.min + d.scale.step * Decimal::from(k)).min(d.scale.max);
            prop_assert_eq!(d.scale.reverse(d.scale.reverse(v)), v);
        }
    }

    #[test]
    fn prorating_a_complete_set_changes_nothing(values in complete_answers(&def("wai-sr"))) {
        let strict = def("wai-sr");
        let mut lenient_spec = spec("wai-sr");
        lenient_spec.scoring.missing.max_per_subscale = None;
        lenient_spec.scoring.missing.max_total = None;
        let lenient = validate(&lenient_spec).unwrap();
        prop_assert_eq!(scored(&strict, &as_json(&strict, &values)), scored(&lenient, &as_json(&lenient, &values)));
    }

    #[test]
    fn scores_do_not_depend_on_answer_order(values in complete_answers(&def("haq-ii")), rotate in 0usize..19) {
        let d = def("haq-ii");
        let mut pairs: Vec<(String, f64)> = d.items.iter().zip(&values).map(|(i, v)| (i.id.clone(), to_f64(*v))).collect();
        let forward: String = serde_json::to_string(&pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>()).unwrap();
        pairs.rotate_left(rotate);
        pairs.reverse();
        let text = format!("{{{}}}", pairs.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect::<Vec<_>>().join(", "));
        let a: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap();
        let b: BTreeMap<String, Value> = serde_json::from_str(&forward).unwrap();
        prop_assert_eq!(scored(&d, &a), scored(&d, &b));
    }

    #[test]
    fn srs_sums_are_exact_decimals(tenths in proptest::collection::vec(0i64..=100, 4)) {
        let d = def("srs");
        let a = nums(&tenths.iter().map(|t| *t as f64 / 10.0).collect::<Vec<_>>());
        let exact: i64 = tenths.iter().sum();
        let s = scored(&d, &a);
        prop_assert_eq!(s.total, exact as f64 / 10.0);
        prop_assert_eq!(s.flags.contains(&FLAG_BELOW_CUTOFF.to_string()), exact < 360);
    }
}

// Outcome measures (v2): PHQ-9 and GAD-7, scored 0-3 per item, bands on the total.

fn phq9(values: [f64; 9]) -> Score {
    scored(&def("phq-9"), &nums(&values))
}

#[test]
fn phq9_all_zeros_is_minimal_and_all_threes_severe() {
    let zero = phq9([0.0; 9]);
    assert_eq!((zero.total, zero.band.as_deref()), (0.0, Some("minimal")));
    assert!(zero.flags.is_empty());
    let three = phq9([3.0; 9]);
    assert_eq!((three.total, three.band.as_deref()), (27.0, Some("severe")));
    assert_eq!(three.flags, vec!["item_9_positive"]);
}

#[test]
fn phq9_item_9_raises_the_safety_flag_whatever_the_total() {
    let only_nine = phq9([0., 0., 0., 0., 0., 0., 0., 0., 1.]);
    assert_eq!((only_nine.total, only_nine.band.as_deref()), (1.0, Some("minimal")));
    assert_eq!(only_nine.flags, vec!["item_9_positive"]);
    let four = phq9([1., 1., 1., 0., 0., 0., 0., 0., 1.]);
    assert_eq!((four.total, four.band.as_deref()), (4.0, Some("minimal")));
    assert_eq!(four.flags, vec!["item_9_positive"]);
    assert!(phq9([3., 3., 3., 3., 3., 3., 3., 3., 0.]).flags.is_empty());
}

#[test]
fn phq9_band_edges() {
    // A total t made of ones and twos on items 1-8, item 9 unanswered as 0.
    let with_total = |t: u32| {
        let mut v = [0.0; 9];
        let mut left = t;
        for slot in v.iter_mut().take(8) {
            let x = left.min(3);
            *slot = f64::from(x);
            left -= x;
        }
        assert_eq!(left, 0, "{t} fits in eight items");
        phq9(v)
    };
    for (t, band) in [
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately severe"),
        (19, "moderately severe"),
        (20, "severe"),
    ] {
        let s = with_total(t);
        assert_eq!((s.total, s.band.as_deref()), (f64::from(t), Some(band)), "total {t}");
    }
}

#[test]
fn phq9_allows_no_missing_item() {
    let mut a = nums(&[0.0; 9]);
    a.remove("9");
    assert!(unscored(&def("phq-9"), &a).contains("missing"));
}

#[test]
fn a_phq9_safety_flag_holds_when_another_item_is_skipped_and_the_response_cannot_be_scored() {
    let mut a = nums(&[0., 0., 0., 0., 0., 0., 0., 0., 3.]);
    a.remove("4");
    let (reason, flags) = unscored_with_flags(&def("phq-9"), &a);
    assert!(reason.contains("missing"), "{reason}");
    assert_eq!(flags, vec!["item_9_positive"]);
    // Item 9 answered 0 with another item skipped: unscored, no flag.
    a.insert("9".into(), Value::from(0));
    assert!(unscored_with_flags(&def("phq-9"), &a).1.is_empty());
    // Every answer null: no flag either.
    let nulls: BTreeMap<String, Value> = (1..=9).map(|i| (i.to_string(), Value::Null)).collect();
    assert!(unscored_with_flags(&def("phq-9"), &nulls).1.is_empty());
}

#[test]
fn gad7_bands() {
    let gad = |values: [f64; 7]| scored(&def("gad-7"), &nums(&values));
    assert_eq!(gad([3., 3., 3., 1., 0., 0., 0.]).band.as_deref(), Some("moderate")); // 10
    assert_eq!(gad([3., 3., 3., 0., 0., 0., 0.]).band.as_deref(), Some("mild")); // 9
    assert_eq!(gad([3., 3., 3., 3., 2., 0., 0.]).band.as_deref(), Some("moderate")); // 14
    assert_eq!(gad([3., 3., 3., 3., 3., 0., 0.]).band.as_deref(), Some("severe")); // 15
    assert_eq!(gad([3.; 7]).band.as_deref(), Some("severe")); // 21
    assert!(gad([3.; 7]).flags.is_empty(), "GAD-7 has no item flag");
}

#[test]
fn an_unanswered_item_never_raises_its_flag() {
    let mut spec = spec("phq-9");
    spec.key = "phq-9-missing-allowed".into();
    spec.scoring.missing.max_total = Some(1);
    let d = validate(&spec).unwrap();
    let mut a = nums(&[1.0; 9]);
    a.insert("9".into(), Value::Null);
    let s = scored(&d, &a);
    assert!(s.prorated);
    assert!(!s.flags.contains(&"item_9_positive".to_string()));
}

#[test]
fn alliance_definitions_are_unchanged_by_the_outcome_fields() {
    let wai = def("wai-sr");
    assert_eq!((wai.kind, wai.direction), (Kind::Alliance, Direction::HigherIsBetter));
    assert!(wai.bands.is_empty() && wai.item_flags.is_empty() && wai.rupture.is_some());
    assert_eq!(wai.outcome, OutcomeRules::default());
    let s = scored(&wai, &nums(&[1., 2., 3., 4., 5., 1., 2., 3., 4., 5., 1., 2.]));
    assert_eq!((s.total, s.band.clone()), (33.0, None));
    let phq = def("phq-9");
    assert_eq!((phq.kind, phq.direction), (Kind::Outcome, Direction::LowerIsBetter));
    assert!(phq.rupture.is_none());
}
