//! The alliance-outcome analysis over treatment courses: pairing responses into courses and
//! every statistic of the answer. Pure: rows in, aggregates out (the statistics are those of
//! `scoring::association`).

use std::collections::BTreeMap;

use super::alliance_outcome_model::{
    ClinicianEffects, Correlation, CourseRow, EstimateView, Lagged, LaggedCoefficients, Tertile,
};
use crate::scoring::association::{self, OlsFit};
use crate::scoring::{InstrumentDefinition, outcome};

/// One treatment course, oriented so that a positive change is an improvement.
#[derive(Debug, Clone, PartialEq)]
pub struct Course {
    pub patient: String,
    pub episode: Option<String>,
    pub clinician: Option<String>,
    /// The alliance total at `at_session`.
    pub alliance: f64,
    /// y0, the first outcome total (at or before the alliance).
    pub baseline: f64,
    /// The last outcome total after the alliance.
    pub end: f64,
    pub improvement: f64,
    pub prior_change: f64,
    pub later_change: f64,
}

/// Pairs responses into courses (rows in course order): A is the first alliance total at
/// `at_session`; y0 the first outcome total, which must come at or before A; yk the last at
/// or before A; yend the last after A. A course without A or yend is left out.
pub fn courses(rows: &[CourseRow], alliance: &str, at_session: i64, orientation: f64) -> Vec<Course> {
    rows.chunk_by(|a, b| a.patient == b.patient && a.episode == b.episode)
        .filter_map(|course| {
            let a = course
                .iter()
                .find(|r| r.instrument_key == alliance && r.session.map(i64::from) == Some(at_session))?;
            let at = a.administered_at;
            let outcomes: Vec<&CourseRow> = course.iter().filter(|r| r.instrument_key != alliance).collect();
            let first = <[&CourseRow]>::first(&outcomes)?;
            if first.administered_at > at {
                return None;
            }
            let before = outcomes.iter().rev().find(|r| r.administered_at <= at)?;
            let after = outcomes.iter().rev().find(|r| r.administered_at > at)?;
            let (y0, yk, yend) = (first.total?, before.total?, after.total?);
            Some(Course {
                patient: a.patient.clone(),
                episode: a.episode.clone(),
                clinician: a.clinician.clone(),
                alliance: a.total?,
                baseline: y0,
                end: yend,
                improvement: orientation * (yend - y0),
                prior_change: orientation * (yk - y0),
                later_change: orientation * (yend - yk),
            })
        })
        .collect()
}

/// Every statistic of the answer, from the courses (which are already filtered).
pub fn analyse(
    courses: &[Course],
    outcome: &InstrumentDefinition,
    min_patients: i64,
) -> (
    Option<Correlation>,
    Option<Lagged>,
    Vec<Tertile>,
    Option<ClinicianEffects>,
) {
    let too_few = i64::try_from(courses.len()).map_or(true, |n| n < min_patients);
    if too_few {
        return (None, None, Vec::new(), None);
    }
    let alliance: Vec<f64> = courses.iter().map(|c| c.alliance).collect();
    let improvement: Vec<f64> = courses.iter().map(|c| c.improvement).collect();
    let r = association::pearson(&alliance, &improvement);
    let ci = r.and_then(|r| association::fisher_ci(r, courses.len()));
    let correlation = Correlation {
        r,
        ci_lower: ci.map(|c| c.0),
        ci_upper: ci.map(|c| c.1),
    };
    (
        Some(correlation),
        lagged(courses),
        tertiles(courses, outcome),
        clinician_effects(courses),
    )
}

fn lagged(courses: &[Course]) -> Option<Lagged> {
    let column = |f: fn(&Course) -> f64| courses.iter().map(f).collect::<Vec<f64>>();
    let (later, a, prior, base) = (
        column(|c| c.later_change),
        column(|c| c.alliance),
        column(|c| c.prior_change),
        column(|c| c.baseline),
    );
    let fit: OlsFit = association::ols(&later, &[&a, &prior, &base])?;
    let estimate = |i: usize| fit.coefficients.get(i).map(EstimateView::from);
    Some(Lagged {
        n: fit.n,
        r_squared: fit.r_squared,
        coefficients: LaggedCoefficients {
            intercept: estimate(0)?,
            alliance: estimate(1)?,
            prior_change: estimate(2)?,
            baseline: estimate(3)?,
        },
    })
}

/// Courses sorted by A (ties by patient, then episode); course i of n is in tertile
/// floor(3 i / n) + 1.
fn tertiles(courses: &[Course], outcome: &InstrumentDefinition) -> Vec<Tertile> {
    let mut sorted: Vec<&Course> = courses.iter().collect();
    sorted.sort_by(|a, b| {
        a.alliance
            .total_cmp(&b.alliance)
            .then_with(|| a.patient.cmp(&b.patient))
            .then_with(|| a.episode.cmp(&b.episode))
    });
    let n = sorted.len();
    let mut groups: BTreeMap<u8, Vec<&Course>> = BTreeMap::new();
    for (i, c) in sorted.into_iter().enumerate() {
        let tertile = u8::try_from(3 * i / n + 1).unwrap_or(3);
        groups.entry(tertile).or_default().push(c);
    }
    let has_response = outcome.outcome.response_reduction.is_some();
    let has_remission = outcome.outcome.remission.is_some();
    groups
        .into_iter()
        .map(|(tertile, group)| {
            let size = group.len() as f64;
            let share = |hit: &dyn Fn(&Course) -> bool| group.iter().filter(|c| hit(c)).count() as f64 / size;
            Tertile {
                tertile,
                n: group.len(),
                alliance_min: Some(group.iter().map(|c| c.alliance).fold(f64::INFINITY, f64::min)),
                alliance_max: Some(group.iter().map(|c| c.alliance).fold(f64::NEG_INFINITY, f64::max)),
                mean_improvement: Some(group.iter().map(|c| c.improvement).sum::<f64>() / size),
                response_rate: has_response
                    .then(|| share(&|c| outcome::response(outcome, c.baseline, c.end) == Some(true))),
                remission_rate: has_remission.then(|| share(&|c| outcome::remission(outcome, c.end) == Some(true))),
                suppressed: false,
            }
        })
        .collect()
}

fn clinician_effects(courses: &[Course]) -> Option<ClinicianEffects> {
    let mut by: BTreeMap<&str, Vec<&Course>> = BTreeMap::new();
    for c in courses {
        if let Some(clinician) = c.clinician.as_deref() {
            by.entry(clinician).or_default().push(c);
        }
    }
    by.retain(|_, group| group.len() >= 2);
    if by.len() < 3 {
        return None;
    }
    let groups: Vec<&Vec<&Course>> = by.values().collect();
    let of =
        |f: fn(&Course) -> f64| -> Vec<Vec<f64>> { groups.iter().map(|g| g.iter().map(|c| f(c)).collect()).collect() };
    let (mut improvement, mut within, mut between) = (Vec::new(), Vec::new(), Vec::new());
    for group in &groups {
        let mean = group.iter().map(|c| c.alliance).sum::<f64>() / group.len() as f64;
        for c in group.iter() {
            improvement.push(c.improvement);
            within.push(c.alliance - mean);
            between.push(mean);
        }
    }
    let fit = association::ols(&improvement, &[&within, &between]);
    let estimate = |i: usize| fit.as_ref().and_then(|f| f.coefficients.get(i)).map(EstimateView::from);
    Some(ClinicianEffects {
        clinicians: groups.len(),
        courses: improvement.len(),
        outcome_icc1: association::icc1(&of(|c| c.improvement)),
        alliance_icc1: association::icc1(&of(|c| c.alliance)),
        within: estimate(1),
        between: estimate(2),
    })
}
