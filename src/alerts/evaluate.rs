//! What a series says should be alerted, computed from the stored series with the scoring
//! core's own rupture, cut-off and reliable-change code (the same as trends). Pure: the
//! caller loads the series and brings the stored alerts to this desired set.

use serde_json::{Value, json};

pub use super::model::AlertKind;
use crate::norms::NormsUsed;
use crate::scoring::expected::InForce;
use crate::scoring::outcome::{ReliableChangeRule, assess_change};
use crate::scoring::score::FLAG_BELOW_CUTOFF;
use crate::scoring::stats::ReliableChange;
use crate::scoring::{Comparator, InstrumentDefinition, exact_change};
pub use crate::series::SeriesPoint;
use crate::series::{rule_name, series_statistics};

/// An alert the series calls for, named by its fingerprint (the fact it stands for).
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub fingerprint: String,
    pub kind: AlertKind,
    /// The point that raised it (index into the series).
    pub point: usize,
    pub detail: Value,
    /// The point that resolved it, if any (never for item flags).
    pub resolved_by: Option<usize>,
}

fn comparator_name(c: Comparator) -> &'static str {
    match c {
        Comparator::Lt => "lt",
        Comparator::Le => "le",
        Comparator::Gt => "gt",
        Comparator::Ge => "ge",
    }
}

/// Every alert the series calls for:
/// - `rupture`, one per rupture point, resolved by its repair;
/// - `below_cutoff`, one per run of consecutive flagged points, raised at the first and
///   resolved by the first later point that is not flagged;
/// - `deterioration`, one each time the class (baseline to that point) becomes
///   `deteriorated`, resolved by the first later point where it no longer is;
/// - `item_flag`, one per response and definition flag, never resolved on its own; scored
///   or not (a safety flag never waits for a score).
///
/// - `not_on_track`, with a model in force: one per run of totals beyond the bound within
///   a course (one episode), raised at the first and resolved by the first later total of
///   the course within it; totals without an expectation (the intake, `t > 20`) neither
///   raise nor resolve.
///
/// All but `item_flag` read the scored points only.
pub fn desired(
    points: &[SeriesPoint],
    def: &InstrumentDefinition,
    norms: &NormsUsed,
    model: Option<&InForce>,
) -> Vec<Desired> {
    // The scored points, by their index into `points`.
    let (scored, scored_points): (Vec<usize>, Vec<SeriesPoint>) = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.total.is_some())
        .map(|(i, p)| (i, p.clone()))
        .unzip();
    let at = |i: usize| scored.get(i).copied().unwrap_or_default();
    let mut found = score_alerts(&scored_points, def, norms);
    if let Some(model) = model {
        found.extend(not_on_track_alerts(&scored_points, def, model));
    }
    let mut out: Vec<Desired> = found
        .into_iter()
        .map(|d| Desired {
            point: at(d.point),
            resolved_by: d.resolved_by.map(at),
            ..d
        })
        .collect();
    out.extend(item_flag_alerts(points, def));
    out
}

/// The courses of scored points (one per episode, in order of first appearance), each as
/// indexes into `points` in time order.
pub fn courses_of(points: &[SeriesPoint]) -> Vec<Vec<usize>> {
    let mut courses: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let episode = p.episode.as_deref();
        match courses.iter_mut().find(|(e, _)| *e == episode) {
            Some((_, members)) => members.push(i),
            None => courses.push((episode, vec![i])),
        }
    }
    courses.into_iter().map(|(_, members)| members).collect()
}

/// The `not_on_track` alerts of scored points under `model`.
fn not_on_track_alerts(points: &[SeriesPoint], def: &InstrumentDefinition, model: &InForce) -> Vec<Desired> {
    let mut out = Vec::new();
    for course in courses_of(points) {
        let totals: Vec<f64> = course
            .iter()
            .map(|i| points.get(*i).and_then(|p| p.total).unwrap_or_default())
            .collect();
        let judged = crate::scoring::expected::judge_course(&model.fit, def.direction, &totals);
        let mut open: Option<Desired> = None;
        for (&index, expectation) in course.iter().zip(judged) {
            let Some(e) = expectation else { continue };
            match (&mut open, e.on_track) {
                (None, false) => {
                    let id = points.get(index).map_or_else(String::new, |p| p.id.to_string());
                    open = Some(Desired {
                        fingerprint: format!("not_on_track:{id}"),
                        kind: AlertKind::NotOnTrack,
                        point: index,
                        detail: json!({
                            "t": e.t,
                            "total": totals.get(e.t - 1),
                            "expected": e.expected,
                            "bound": e.bound,
                            "fitted_at": model.fitted_at,
                        }),
                        resolved_by: None,
                    });
                }
                (Some(run), true) => {
                    run.resolved_by = Some(index);
                    out.extend(open.take());
                }
                _ => {}
            }
        }
        out.extend(open);
    }
    out
}

/// The rupture, cut-off and deterioration alerts of scored points.
fn score_alerts(points: &[SeriesPoint], def: &InstrumentDefinition, norms: &NormsUsed) -> Vec<Desired> {
    let totals: Vec<f64> = points.iter().map(|p| p.total.unwrap_or_default()).collect();
    let mut out = Vec::new();
    let id = |i: usize| points.get(i).map_or_else(String::new, |p| p.id.to_string());

    let (ruptures, _) = series_statistics(&totals, def, norms);
    for r in ruptures {
        out.push(Desired {
            fingerprint: format!("rupture:{}", id(r.index)),
            kind: AlertKind::Rupture,
            point: r.index,
            detail: json!({"from": r.from, "to": r.to, "drop": r.drop, "rule": rule_name(r.rule)}),
            resolved_by: r.repaired_by,
        });
    }

    let flagged = |i: usize| {
        points
            .get(i)
            .is_some_and(|p| p.flags.iter().any(|f| f == FLAG_BELOW_CUTOFF))
    };
    let mut i = 0;
    while i < points.len() {
        if !flagged(i) {
            i += 1;
            continue;
        }
        let end = (i..points.len()).find(|&j| !flagged(j));
        out.push(Desired {
            fingerprint: format!("below_cutoff:{}", id(i)),
            kind: AlertKind::BelowCutoff,
            point: i,
            detail: json!({
                "total": totals.get(i),
                "cutoff": def.cutoff.map(|c| crate::scoring::to_f64(c.value)),
                "comparator": def.cutoff.map(|c| comparator_name(c.comparator)),
            }),
            resolved_by: end,
        });
        i = end.unwrap_or(points.len());
    }

    let s_diff = norms.s_diff();
    let class_at = |k: usize| -> Option<(ReliableChange, ReliableChangeRule)> {
        let change = assess_change(def, *totals.first()?, *totals.get(k)?, s_diff);
        change.class.map(|c| (c, change.rule))
    };
    let deteriorated = |k: usize| matches!(class_at(k), Some((ReliableChange::Deteriorated, _)));
    for k in 1..points.len() {
        if deteriorated(k) && !deteriorated(k - 1) {
            let rule = class_at(k).map(|(_, r)| match r {
                ReliableChangeRule::Rci => "rci",
                ReliableChangeRule::Points => "points",
            });
            let (baseline, latest) = (
                totals.first().copied().unwrap_or_default(),
                totals.get(k).copied().unwrap_or_default(),
            );
            out.push(Desired {
                fingerprint: format!("deterioration:{}", id(k)),
                kind: AlertKind::Deterioration,
                point: k,
                detail: json!({"baseline": baseline, "latest": latest, "change": exact_change(baseline, latest), "rule": rule}),
                resolved_by: (k + 1..points.len()).find(|&j| !deteriorated(j)),
            });
        }
    }
    out
}

/// One `item_flag` alert per response and definition flag it carries, scored or not.
fn item_flag_alerts(points: &[SeriesPoint], def: &InstrumentDefinition) -> Vec<Desired> {
    let mut out = Vec::new();
    for (i, p) in points.iter().enumerate() {
        for f in &def.item_flags {
            if p.flags.contains(&f.flag) {
                let item = def.items.get(f.item).map(|it| it.id.clone()).unwrap_or_default();
                out.push(Desired {
                    fingerprint: format!("item_flag:{}:{}", p.id, f.flag),
                    kind: AlertKind::ItemFlag,
                    point: i,
                    detail: json!({"flag": f.flag, "item": item, "answer": p.answers.get(&item)}),
                    resolved_by: None,
                });
            }
        }
    }
    out
}
