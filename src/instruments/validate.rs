//! Refuses inconsistent instrument definitions, naming every problem by JSON pointer, and
//! builds the typed definition the scoring core runs on.

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;

use super::model::NewInstrument;
use crate::error::FieldError;
use crate::scoring::{
    Band, Comparator, Cutoff, DefinitionParts, InstrumentDefinition, ItemDef, ItemFlag, Method, MissingPolicy, Norms,
    OutcomeRules, Rater, RuptureRule, RuptureRuleKind, Scale, SubscaleDef, to_decimal,
};

pub const MAX_ITEMS: usize = 500;
const MAX_TITLE: usize = 200;
const MAX_CITATION: usize = 2_000;
const MAX_LICENCE: usize = 10_000;
const MAX_ITEM_TEXT: usize = 2_000;
const MAX_ID: usize = 64;
const MAX_REPAIR_WINDOW: u32 = 100;

pub fn is_valid_key(key: &str) -> bool {
    (2..=63).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, pointer: impl Into<String>, detail: impl Into<String>) {
        self.0.push(FieldError::new(pointer, detail));
    }

    fn text(&mut self, pointer: &str, value: &str, max: usize, required: bool) {
        let len = value.chars().count();
        if required && value.trim().is_empty() {
            self.add(pointer, "must not be empty");
        } else if value.contains('\0') {
            self.add(pointer, "must not contain NUL (U+0000)");
        } else if len > max {
            self.add(pointer, format!("must be at most {max} characters"));
        }
    }
}

fn decimal(problems: &mut Problems, pointer: &str, value: f64) -> Option<Decimal> {
    let d = to_decimal(value);
    if d.is_none() {
        problems.add(pointer, "number out of range");
    }
    d
}

pub fn validate(spec: &NewInstrument) -> Result<InstrumentDefinition, Vec<FieldError>> {
    let mut p = Problems(Vec::new());
    check_identity(spec, &mut p);
    let raters = check_raters(spec, &mut p);
    let scale = check_scale(spec, &mut p);
    let subscale_pos = check_subscales(spec, &mut p);
    let (items, subscale_items) = check_items(spec, &subscale_pos, &mut p);
    let (method, missing) = check_scoring(spec, &subscale_items, &mut p);
    let (cutoff, item_threshold) = check_interpretation(spec, scale, &mut p);
    let bands = check_bands(spec, scale, &mut p);
    let item_flags = check_item_flags(spec, &items, &mut p);
    let outcome = check_outcome(spec, &mut p);
    let norms = check_norms(spec, &mut p);
    let rupture = check_rupture(spec, &mut p);
    match (p.0.is_empty(), scale, method, rupture) {
        (true, Some(scale), Some(method), Some(rupture)) => Ok(InstrumentDefinition::new(DefinitionParts {
            kind: spec.kind,
            direction: spec.direction,
            raters,
            scale,
            items,
            subscales: spec
                .subscales
                .iter()
                .zip(subscale_items)
                .map(|(s, items)| SubscaleDef {
                    key: s.key.clone(),
                    items,
                })
                .collect(),
            method,
            missing,
            cutoff,
            item_threshold,
            bands,
            item_flags,
            outcome,
            norms,
            rupture,
        })),
        _ => Err(p.0),
    }
}

/// Bands: each `min <= max`, inside the possible totals, sorted and not overlapping.
fn check_bands(spec: &NewInstrument, scale: Option<Scale>, p: &mut Problems) -> Vec<Band> {
    let n = Decimal::from(spec.items.len());
    let possible = scale.map(|s| (s.min * n, s.max * n));
    let mut bands: Vec<Band> = Vec::new();
    for (i, b) in spec.interpretation.bands.iter().enumerate() {
        let at = |field: &str| format!("/interpretation/bands/{i}/{field}");
        let (Some(min), Some(max)) = (decimal(p, &at("min"), b.min), decimal(p, &at("max"), b.max)) else {
            continue;
        };
        p.text(&at("label"), &b.label, MAX_TITLE, true);
        if min > max {
            p.add(at("max"), "must be at least the band's min");
            continue;
        }
        if let Some((lo, hi)) = possible
            && (min < lo || max > hi)
        {
            p.add(
                at("min"),
                format!(
                    "the band must lie within the possible totals {} to {}",
                    lo.normalize(),
                    hi.normalize()
                ),
            );
        }
        if let Some(previous) = bands.last()
            && min <= previous.max
        {
            p.add(
                at("min"),
                "must lie above the previous band's max (bands are sorted and do not overlap)",
            );
        }
        bands.push(Band {
            min,
            max,
            label: b.label.clone(),
        });
    }
    bands
}

/// Item flags name existing items, a comparator and a flag name.
fn check_item_flags(spec: &NewInstrument, items: &[ItemDef], p: &mut Problems) -> Vec<ItemFlag> {
    let mut flags = Vec::new();
    for (i, f) in spec.interpretation.item_flags.iter().enumerate() {
        let at = |field: &str| format!("/interpretation/item_flags/{i}/{field}");
        let item = items.iter().position(|it| it.id == f.item);
        if item.is_none() {
            p.add(at("item"), format!("no item `{}` in `items`", f.item));
        }
        let comparator = Comparator::parse(&f.comparator);
        if comparator.is_none() {
            p.add(at("comparator"), "must be one of lt, le, gt, ge");
        }
        let value = decimal(p, &at("value"), f.value);
        let name_ok = !f.flag.is_empty()
            && f.flag.len() <= MAX_ID
            && f.flag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            p.add(
                at("flag"),
                format!("must be 1 to {MAX_ID} characters of a-z, 0-9 and '_'"),
            );
        }
        if let (Some(item), Some(comparator), Some(value), true) = (item, comparator, value, name_ok) {
            flags.push(ItemFlag {
                item,
                comparator,
                value,
                flag: f.flag.clone(),
            });
        }
    }
    flags
}

/// Response reduction in (0, 1], a remission comparison, reliable-change points above 0.
fn check_outcome(spec: &NewInstrument, p: &mut Problems) -> OutcomeRules {
    let Some(o) = &spec.outcome else {
        return OutcomeRules::default();
    };
    let mut rules = OutcomeRules::default();
    if let Some(r) = o.response_reduction {
        match decimal(p, "/outcome/response_reduction", r) {
            Some(d) if d > Decimal::ZERO && d <= Decimal::ONE => rules.response_reduction = Some(d),
            Some(_) => p.add(
                "/outcome/response_reduction",
                "must be greater than 0 and at most 1 (0.5: a 50% reduction)",
            ),
            None => {}
        }
    }
    if let Some(c) = &o.remission {
        let value = decimal(p, "/outcome/remission/value", c.value);
        match Comparator::parse(&c.comparator) {
            Some(comparator) => rules.remission = value.map(|value| Cutoff { value, comparator }),
            None => p.add("/outcome/remission/comparator", "must be one of lt, le, gt, ge"),
        }
    }
    if let Some(points) = o.reliable_change_points {
        match decimal(p, "/outcome/reliable_change_points", points) {
            Some(d) if d > Decimal::ZERO => rules.reliable_change_points = Some(d),
            Some(_) => p.add("/outcome/reliable_change_points", "must be greater than 0"),
            None => {}
        }
    }
    rules
}

fn check_identity(spec: &NewInstrument, p: &mut Problems) {
    if !is_valid_key(&spec.key) {
        p.add("/key", "must be 2 to 63 characters of a-z, 0-9 and '-'");
    }
    p.text("/title", &spec.title, MAX_TITLE, true);
    if let Some(c) = &spec.citation {
        p.text("/citation", c, MAX_CITATION, false);
    }
    if let Some(l) = &spec.licence {
        p.text("/licence", l, MAX_LICENCE, false);
    }
}

fn check_raters(spec: &NewInstrument, p: &mut Problems) -> Vec<Rater> {
    let mut raters = Vec::new();
    if spec.raters.is_empty() {
        p.add("/raters", "name at least one rater");
    }
    for (i, r) in spec.raters.iter().enumerate() {
        match Rater::parse(r) {
            Some(rater) if raters.contains(&rater) => p.add(format!("/raters/{i}"), "duplicate rater"),
            Some(rater) => raters.push(rater),
            None => p.add(
                format!("/raters/{i}"),
                "unknown rater: use patient, clinician or observer",
            ),
        }
    }

    raters
}

/// The response scale (min < max, a step dividing the range) and its labels.
fn check_scale(spec: &NewInstrument, p: &mut Problems) -> Option<Scale> {
    let min = decimal(p, "/scale/min", spec.scale.min);
    let max = decimal(p, "/scale/max", spec.scale.max);
    let step = decimal(p, "/scale/step", spec.scale.step);
    let mut scale = None;
    if let (Some(min), Some(max), Some(step)) = (min, max, step) {
        let mut ok = true;
        if min >= max {
            p.add("/scale/max", "must be greater than scale.min");
            ok = false;
        }
        if step <= Decimal::ZERO {
            p.add("/scale/step", "must be greater than 0");
            ok = false;
        } else if ok && !((max - min) % step).is_zero() {
            p.add("/scale/step", "must divide the range max - min");
            ok = false;
        }
        if ok {
            scale = Some(Scale { min, max, step });
        }
    }
    for (value, label) in &spec.scale.labels {
        let pointer = format!("/scale/labels/{}", crate::error::escape_pointer(value));
        let parsed = value.trim().parse::<f64>().ok().and_then(to_decimal);
        let outside = match (parsed, scale, min, max) {
            (None, ..) => true,
            (Some(v), Some(s), ..) => !s.contains(v),
            (Some(v), None, Some(lo), Some(hi)) => v < lo || v > hi,
            _ => false,
        };
        if outside {
            p.add(&pointer, "label for a value outside the scale");
        }
        p.text(&pointer, label, MAX_TITLE, true);
    }

    scale
}

/// Subscale keys are unique; their position by key.
fn check_subscales<'a>(spec: &'a NewInstrument, p: &mut Problems) -> HashMap<&'a str, usize> {
    let mut subscale_pos: HashMap<&str, usize> = HashMap::new();
    for (i, s) in spec.subscales.iter().enumerate() {
        if s.key.trim().is_empty() || s.key.len() > MAX_ID || s.key.contains('\0') {
            p.add(
                format!("/subscales/{i}/key"),
                format!("must be 1 to {MAX_ID} characters"),
            );
        } else if subscale_pos.insert(s.key.as_str(), i).is_some() {
            p.add(format!("/subscales/{i}/key"), "duplicate subscale key");
        }
        p.text(&format!("/subscales/{i}/title"), &s.title, MAX_TITLE, true);
    }

    subscale_pos
}

/// Item ids are unique and name declared subscales; every subscale has an item.
fn check_items(
    spec: &NewInstrument,
    subscale_pos: &HashMap<&str, usize>,
    p: &mut Problems,
) -> (Vec<ItemDef>, Vec<Vec<usize>>) {
    if spec.items.is_empty() {
        p.add("/items", "an instrument needs at least one item");
    }
    if spec.items.len() > MAX_ITEMS {
        p.add("/items", format!("at most {MAX_ITEMS} items"));
    }
    let mut seen = HashSet::new();
    let mut items = Vec::with_capacity(spec.items.len());
    let mut subscale_items: Vec<Vec<usize>> = vec![Vec::new(); spec.subscales.len()];
    for (i, item) in spec.items.iter().enumerate() {
        if item.id.trim().is_empty() || item.id.len() > MAX_ID || item.id.contains('\0') {
            p.add(format!("/items/{i}/id"), format!("must be 1 to {MAX_ID} characters"));
        } else if !seen.insert(item.id.as_str()) {
            p.add(format!("/items/{i}/id"), "duplicate item id");
        }
        if let Some(text) = &item.text {
            p.text(&format!("/items/{i}/text"), text, MAX_ITEM_TEXT, false);
        }
        let subscale = match &item.subscale {
            None => None,
            Some(key) => match subscale_pos.get(key.as_str()) {
                Some(&pos) => {
                    if let Some(items) = subscale_items.get_mut(pos) {
                        items.push(i);
                    }
                    Some(pos)
                }
                None => {
                    p.add(format!("/items/{i}/subscale"), "subscale not declared in `subscales`");
                    None
                }
            },
        };
        items.push(ItemDef {
            id: item.id.clone(),
            subscale,
            reverse: item.reverse,
        });
    }
    for (i, members) in subscale_items.iter().enumerate() {
        if members.is_empty() {
            p.add(format!("/subscales/{i}"), "subscale has no item");
        }
    }

    (items, subscale_items)
}

/// The scoring method, and a missing-item policy that never lets the whole instrument or a
/// whole subscale go missing.
fn check_scoring(
    spec: &NewInstrument,
    subscale_items: &[Vec<usize>],
    p: &mut Problems,
) -> (Option<Method>, MissingPolicy) {
    let method = match spec.scoring.method.as_str() {
        "sum" => Some(Method::Sum),
        "mean" => Some(Method::Mean),
        _ => {
            p.add("/scoring/method", "must be `sum` or `mean`");
            None
        }
    };
    let missing = MissingPolicy {
        max_per_subscale: spec.scoring.missing.max_per_subscale,
        max_total: spec.scoring.missing.max_total,
    };
    if let Some(max_total) = missing.max_total
        && !spec.items.is_empty()
        && max_total as usize >= spec.items.len()
    {
        p.add(
            "/scoring/missing/max_total",
            "must leave at least one item answered (less than the item count)",
        );
    }
    if let Some(per) = missing.max_per_subscale {
        if spec.subscales.is_empty() && per > 0 {
            p.add("/scoring/missing/max_per_subscale", "the instrument has no subscales");
        }
        if let Some(smallest) = subscale_items.iter().map(Vec::len).filter(|n| *n > 0).min()
            && per as usize >= smallest
        {
            p.add(
                "/scoring/missing/max_per_subscale",
                format!("must be less than the smallest subscale's item count ({smallest})"),
            );
        }
    }

    (method, missing)
}

fn check_interpretation(
    spec: &NewInstrument,
    scale: Option<Scale>,
    p: &mut Problems,
) -> (Option<Cutoff>, Option<Decimal>) {
    let mut cutoff = None;
    if let Some(c) = &spec.interpretation.cutoff {
        let value = decimal(p, "/interpretation/cutoff/value", c.value);
        match Comparator::parse(&c.comparator) {
            Some(comparator) => cutoff = value.map(|value| Cutoff { value, comparator }),
            None => p.add("/interpretation/cutoff/comparator", "must be one of lt, le, gt, ge"),
        }
    }
    let mut item_threshold = None;
    if let Some(t) = spec.interpretation.item_threshold {
        item_threshold = decimal(p, "/interpretation/item_threshold", t);
        if let (Some(t), Some(s)) = (item_threshold, scale)
            && (t < s.min || t > s.max)
        {
            p.add("/interpretation/item_threshold", "must lie within the scale");
        }
    }

    (cutoff, item_threshold)
}

/// Norms are used only when both SD and reliability are given.
fn check_norms(spec: &NewInstrument, p: &mut Problems) -> Option<Norms> {
    let norms_spec = &spec.norms;
    if let Some(sd) = norms_spec.sd
        && sd <= 0.0
    {
        p.add("/norms/sd", "must be greater than 0");
    }
    if let Some(r) = norms_spec.reliability
        && !(r > 0.0 && r < 1.0)
    {
        p.add("/norms/reliability", "must be strictly between 0 and 1");
    }
    if let Some(source) = &norms_spec.source {
        p.text("/norms/source", source, MAX_CITATION, false);
    }
    match (norms_spec.sd, norms_spec.reliability) {
        (Some(sd), Some(reliability)) => Some(Norms { sd, reliability }),
        _ => None,
    }
}

/// `Some(None)`: no rupture detection; `None`: the rule is invalid.
fn check_rupture(spec: &NewInstrument, p: &mut Problems) -> Option<Option<RuptureRule>> {
    let Some(rupture) = &spec.rupture else {
        return Some(None);
    };
    let kind = match rupture.rule.as_str() {
        "reliable_drop" => Some(RuptureRuleKind::ReliableDrop),
        "sd_drop" => Some(RuptureRuleKind::SdDrop),
        _ => {
            p.add("/rupture/rule", "must be `reliable_drop` or `sd_drop`");
            None
        }
    };
    if !(rupture.k > 0.0 && rupture.k <= 10.0) {
        p.add("/rupture/k", "must be greater than 0 and at most 10");
    }
    if let Some(min_sd) = rupture.min_sd
        && !(min_sd.is_finite() && (0.0..=1000.0).contains(&min_sd))
    {
        p.add("/rupture/min_sd", "must be 0 to 1000 (points of the total)");
    }
    if rupture.repair_window == 0 || rupture.repair_window > MAX_REPAIR_WINDOW {
        p.add("/rupture/repair_window", format!("must be 1 to {MAX_REPAIR_WINDOW}"));
    }
    kind.map(|kind| {
        Some(RuptureRule {
            kind,
            k: rupture.k,
            repair_window: rupture.repair_window as usize,
            min_sd: rupture.min_sd.unwrap_or(crate::scoring::definition::DEFAULT_MIN_SD),
        })
    })
}
