//! The expected treatment response ("not on track"), after Finch, Lambert & Schaalje (2001):
//! expected-recovery curves on ln(t) by intake severity, fitted by ordinary least squares on
//! one organisation's own courses. Pure: courses in, the model and its judgements out.
//!
//! A course is one series of totals in time order; `t` is a total's position in it (1, 2,
//! ...), `x` its first total (the intake). The fit uses every total with `2 <= t <= 20` (at
//! `t = 1` the total is the intake itself): `y = b0 + b1 x + b2 ln t + b3 x ln t + e`,
//! `residual_sd = sqrt(SSR / (n_points - 4))`. The bound lies 1.2816 residual SDs on the
//! worse side of the expectation; a total strictly beyond it is not on track. It is a band
//! of the population's residuals, not a prediction interval for one patient.

use super::Direction;
use super::association;

/// The band's width in residual SDs (one-sided 90% for normal residuals of constant variance).
pub const Z: f64 = 1.2816;
/// The fewest courses a model is fitted on.
pub const MIN_COURSES: usize = 30;
/// The fewest totals a course has.
pub const MIN_COURSE_POINTS: usize = 3;
/// The last position with an expectation.
pub const MAX_T: usize = 20;
/// The positions the curves are drawn at.
pub const CURVE_T: std::ops::RangeInclusive<usize> = 1..=12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Fitted,
    InsufficientData,
    Degenerate,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Fitted => "fitted",
            Status::InsufficientData => "insufficient_data",
            Status::Degenerate => "degenerate",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [Status::Fitted, Status::InsufficientData, Status::Degenerate]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// `b0 + b1 x + (b2 + b3 x) ln t`: intercept, intake, ln t, intake x ln t.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coefficients {
    pub intercept: f64,
    pub intake: f64,
    pub log_t: f64,
    pub intake_log_t: f64,
}

/// A fitted model (or why there is none).
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub status: Status,
    pub n_courses: usize,
    pub n_points: usize,
    /// Present when fitted.
    pub fit: Option<Fit>,
    /// The intakes at the 10th, 50th and 90th percentile of the courses' (nearest rank);
    /// present when there is at least one course.
    pub intake_percentiles: Option<[f64; 3]>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub coefficients: Coefficients,
    pub residual_sd: f64,
}

/// A model in force: its fit and when it was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InForce {
    pub fit: Fit,
    pub fitted_at: chrono::DateTime<chrono::Utc>,
}

/// What the model says of one total.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    pub t: usize,
    pub expected: f64,
    pub bound: f64,
    pub on_track: bool,
}

impl Coefficients {
    pub fn expected(&self, intake: f64, t: usize) -> f64 {
        let ln_t = (t as f64).ln();
        self.intercept + self.intake * intake + (self.log_t + self.intake_log_t * intake) * ln_t
    }
}

impl Fit {
    /// The bound at (intake, t): the expectation moved `Z` residual SDs to the worse side.
    pub fn bound(&self, direction: Direction, intake: f64, t: usize) -> f64 {
        let e = self.coefficients.expected(intake, t);
        match direction {
            Direction::LowerIsBetter => e + Z * self.residual_sd,
            Direction::HigherIsBetter => e - Z * self.residual_sd,
        }
    }

    /// The expectation for the total at position `t` of a course with this intake; `None`
    /// at `t = 1` (the intake itself) and beyond `MAX_T`.
    pub fn judge(&self, direction: Direction, intake: f64, t: usize, total: f64) -> Option<Expectation> {
        if !(2..=MAX_T).contains(&t) {
            return None;
        }
        let expected = self.coefficients.expected(intake, t);
        let bound = self.bound(direction, intake, t);
        let beyond = match direction {
            Direction::LowerIsBetter => total > bound,
            Direction::HigherIsBetter => total < bound,
        };
        Some(Expectation {
            t,
            expected,
            bound,
            on_track: !beyond,
        })
    }
}

/// The value at 1-based rank `rank` of sorted values.
fn at_rank(sorted: &[f64], rank: usize) -> Option<f64> {
    sorted.get(rank.max(1) - 1).copied()
}

/// The 10th, 50th and 90th percentile by nearest rank: ranks ceil(n/10), ceil(n/2),
/// ceil(9n/10) of the n sorted values, counting from 1.
pub fn intake_percentiles(intakes: &[f64]) -> Option<[f64; 3]> {
    let mut sorted = intakes.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some([
        at_rank(&sorted, n.div_ceil(10))?,
        at_rank(&sorted, n.div_ceil(2))?,
        at_rank(&sorted, (9 * n).div_ceil(10))?,
    ])
}

/// Fits the model on `courses` (each a course's totals in time order; courses shorter than
/// `MIN_COURSE_POINTS` do not count). The rows enter the fit in one canonical order, so the
/// order of the courses never changes a bit of the answer.
pub fn fit(courses: &[Vec<f64>]) -> Model {
    let courses: Vec<&Vec<f64>> = courses.iter().filter(|c| c.len() >= MIN_COURSE_POINTS).collect();
    let intakes: Vec<f64> = courses.iter().filter_map(|c| c.first().copied()).collect();
    let mut rows: Vec<(f64, usize, f64)> = courses
        .iter()
        .filter_map(|c| {
            let x = *c.first()?;
            Some(
                c.iter()
                    .enumerate()
                    .skip(1)
                    .take(MAX_T - 1)
                    .map(move |(i, y)| (x, i + 1, *y)),
            )
        })
        .flatten()
        .collect();
    let mut model = Model {
        status: Status::InsufficientData,
        n_courses: courses.len(),
        n_points: rows.len(),
        fit: None,
        intake_percentiles: intake_percentiles(&intakes),
    };
    if courses.len() < MIN_COURSES {
        return model;
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.total_cmp(&b.2)));
    let y: Vec<f64> = rows.iter().map(|r| r.2).collect();
    let x: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let ln_t: Vec<f64> = rows.iter().map(|r| (r.1 as f64).ln()).collect();
    let x_ln_t: Vec<f64> = x.iter().zip(&ln_t).map(|(a, b)| a * b).collect();
    model.status = Status::Degenerate;
    let Some(ols) = association::ols(&y, &[&x, &ln_t, &x_ln_t]) else {
        return model;
    };
    let b = |i: usize| ols.coefficients.get(i).map(|e| e.estimate);
    let (Some(b0), Some(b1), Some(b2), Some(b3)) = (b(0), b(1), b(2), b(3)) else {
        return model;
    };
    model.status = Status::Fitted;
    model.fit = Some(Fit {
        coefficients: Coefficients {
            intercept: b0,
            intake: b1,
            log_t: b2,
            intake_log_t: b3,
        },
        residual_sd: (ols.rss / ols.df as f64).sqrt(),
    });
    model
}

/// Each total's expectation within its course (position `t`, the course's intake).
pub fn judge_course(fit: &Fit, direction: Direction, totals: &[f64]) -> Vec<Option<Expectation>> {
    let Some(intake) = totals.first().copied() else {
        return Vec::new();
    };
    totals
        .iter()
        .enumerate()
        .map(|(i, total)| fit.judge(direction, intake, i + 1, *total))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TRUE: Coefficients = Coefficients {
        intercept: 3.0,
        intake: 0.8,
        log_t: -2.5,
        intake_log_t: -0.1,
    };

    /// Courses from the true curve, without noise: intakes 10..10+n, lengths 3..8.
    fn exact_courses(n: usize) -> Vec<Vec<f64>> {
        (0..n)
            .map(|i| {
                let x = 10.0 + i as f64;
                let len = 3 + i % 6;
                (1..=len)
                    .map(|t| if t == 1 { x } else { TRUE.expected(x, t) })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn courses_from_known_coefficients_without_noise_give_them_back() {
        let model = fit(&exact_courses(40));
        assert_eq!(model.status, Status::Fitted);
        assert_eq!(model.n_courses, 40);
        let fit = model.fit.unwrap();
        let c = fit.coefficients;
        for (got, want) in [
            (c.intercept, TRUE.intercept),
            (c.intake, TRUE.intake),
            (c.log_t, TRUE.log_t),
            (c.intake_log_t, TRUE.intake_log_t),
        ] {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        assert!(fit.residual_sd < 1e-9);
    }

    #[test]
    fn fewer_than_thirty_courses_or_one_intake_fit_nothing() {
        let model = fit(&exact_courses(29));
        assert_eq!((model.status, model.fit), (Status::InsufficientData, None));
        // Courses of two totals do not count at all.
        let mut short = exact_courses(29);
        short.push(vec![12.0, 11.0]);
        assert_eq!(fit(&short).n_courses, 29);
        // Every intake equal: x and x ln t are multiples of the intercept and ln t.
        let same: Vec<Vec<f64>> = (0..40).map(|i| vec![20.0, 18.0 - (i % 3) as f64, 15.0, 14.0]).collect();
        let model = fit(&same);
        assert_eq!(model.status, Status::Degenerate);
        assert!(model.fit.is_none());
        assert_eq!(model.n_points, 120);
    }

    #[test]
    fn points_after_the_twentieth_are_left_out() {
        let mut courses = exact_courses(30);
        courses[0] = (1..=25)
            .map(|t| if t == 1 { 10.0 } else { TRUE.expected(10.0, t) })
            .collect();
        let model = fit(&courses);
        let without: usize = exact_courses(30).iter().skip(1).map(|c| c.len() - 1).sum();
        assert_eq!(model.n_points, without + 19);
    }

    #[test]
    fn the_bound_lies_on_the_worse_side_and_beyond_it_is_not_on_track() {
        let fit = Fit {
            coefficients: TRUE,
            residual_sd: 2.0,
        };
        let e = TRUE.expected(20.0, 4);
        let worse_low = fit.judge(Direction::LowerIsBetter, 20.0, 4, e + Z * 2.0).unwrap();
        assert!(worse_low.on_track, "at the bound is still on track");
        assert!(
            !fit.judge(Direction::LowerIsBetter, 20.0, 4, e + Z * 2.0 + 1e-6)
                .unwrap()
                .on_track
        );
        assert!(
            !fit.judge(Direction::HigherIsBetter, 20.0, 4, e - Z * 2.0 - 1e-6)
                .unwrap()
                .on_track
        );
        assert!(
            fit.judge(Direction::HigherIsBetter, 20.0, 4, e + 50.0)
                .unwrap()
                .on_track
        );
        assert_eq!(fit.judge(Direction::LowerIsBetter, 20.0, 1, 99.0), None);
        assert_eq!(fit.judge(Direction::LowerIsBetter, 20.0, 21, 99.0), None);
    }

    #[test]
    fn percentiles_are_nearest_ranks() {
        let intakes: Vec<f64> = (1..=31).rev().map(f64::from).collect();
        // n = 31: ranks 4, 16, 28.
        assert_eq!(intake_percentiles(&intakes), Some([4.0, 16.0, 28.0]));
        assert_eq!(intake_percentiles(&[7.0]), Some([7.0, 7.0, 7.0]));
        assert_eq!(intake_percentiles(&[]), None);
    }

    proptest! {
        #[test]
        fn shuffling_courses_changes_nothing(seed in any::<u64>(), noise in proptest::collection::vec(-3.0f64..3.0, 300)) {
            let mut courses = exact_courses(45);
            let mut k = 0;
            for c in courses.iter_mut() {
                for v in c.iter_mut().skip(1) {
                    *v += noise[k % noise.len()];
                    k += 1;
                }
            }
            let a = fit(&courses);
            // A deterministic shuffle from the seed.
            let mut order: Vec<usize> = (0..courses.len()).collect();
            let mut s = seed | 1;
            for i in (1..order.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let shuffled: Vec<Vec<f64>> = order.iter().map(|i| courses[*i].clone()).collect();
            prop_assert_eq!(a, fit(&shuffled));
        }
    }
}
