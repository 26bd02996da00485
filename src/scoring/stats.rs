//! The statistics of the scoring rules (sample SD, OLS slope, Cronbach's alpha, the
//! Jacobson & Truax 1991 Reliable Change Index, t-based confidence intervals), as plain
//! functions over slices.
//! Each returns `None` where the statistic is undefined (too few values, zero variance).

use statrs::distribution::{ContinuousCDF, StudentsT};

/// |RCI| above this is reliable change (Jacobson & Truax 1991, two-sided 95%).
pub const RCI_CRITICAL: f64 = 1.96;

pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        None
    } else {
        Some(xs.iter().sum::<f64>() / xs.len() as f64)
    }
}

/// Sample variance (n - 1 denominator); `None` for fewer than 2 values.
pub fn sample_variance(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs)?;
    Some(xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64)
}

/// Sample standard deviation (n - 1); `None` for fewer than 2 values.
pub fn sample_sd(xs: &[f64]) -> Option<f64> {
    sample_variance(xs).map(f64::sqrt)
}

/// Ordinary-least-squares slope of `ys` on `xs`; `None` with fewer than 2 points or when
/// every x is the same.
pub fn ols_slope(xs: &[f64], ys: &[f64]) -> Option<f64> {
    if xs.len() != ys.len() || xs.len() < 2 {
        return None;
    }
    let (mx, my) = (mean(xs)?, mean(ys)?);
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    Some(sxy / sxx)
}

/// Cronbach's alpha of item scores (one row per respondent, already reverse-keyed):
/// `alpha = k/(k-1) * (1 - sum(item variances) / variance(totals))`, sample variances.
/// `None` with fewer than 2 items or respondents, ragged rows, or zero total variance.
pub fn cronbach_alpha(rows: &[Vec<f64>]) -> Option<f64> {
    let k = rows.first()?.len();
    if k < 2 || rows.len() < 2 || rows.iter().any(|r| r.len() != k) {
        return None;
    }
    let item_variances: f64 = (0..k)
        .map(|j| sample_variance(&rows.iter().map(|r| r[j]).collect::<Vec<_>>()))
        .sum::<Option<f64>>()?;
    let totals: Vec<f64> = rows.iter().map(|r| r.iter().sum()).collect();
    let total_variance = sample_variance(&totals)?;
    if total_variance == 0.0 {
        return None;
    }
    let k = k as f64;
    Some(k / (k - 1.0) * (1.0 - item_variances / total_variance))
}

/// Standard error of the difference: `S_diff = SD * sqrt(2 * (1 - r))`.
pub fn s_diff(sd: f64, reliability: f64) -> f64 {
    sd * (2.0 * (1.0 - reliability)).sqrt()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReliableChange {
    Improved,
    Deteriorated,
    Unchanged,
}

/// Reliable Change Index (Jacobson & Truax 1991): `(latest - baseline) / S_diff`, and its
/// class; alliance is higher-is-better, so a reliable rise is `improved`.
pub fn reliable_change(baseline: f64, latest: f64, sd: f64, reliability: f64) -> Option<(f64, ReliableChange)> {
    let s = s_diff(sd, reliability);
    if s.is_nan() || s <= 0.0 {
        return None;
    }
    let rci = (latest - baseline) / s;
    let class = if rci.abs() <= RCI_CRITICAL {
        ReliableChange::Unchanged
    } else if rci > 0.0 {
        ReliableChange::Improved
    } else {
        ReliableChange::Deteriorated
    };
    Some((rci, class))
}

/// The two-sided 95% confidence interval of a mean from `n` values with sample SD `sd`,
/// on the t distribution with n - 1 degrees of freedom; `None` for n < 2.
pub fn confidence_interval_95(mean: f64, sd: f64, n: usize) -> Option<(f64, f64)> {
    if n < 2 {
        return None;
    }
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?.inverse_cdf(0.975);
    let half = t * sd / (n as f64).sqrt();
    Some((mean - half, mean + half))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() < tol
    }

    #[test]
    fn sd_and_variance_are_sample_statistics() {
        assert!(close(
            sample_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap(),
            2.138089935,
            1e-9
        ));
        assert_eq!(sample_sd(&[3.0]), None);
        assert_eq!(sample_sd(&[3.0, 3.0]), Some(0.0));
    }

    #[test]
    fn slope_is_ols() {
        assert!(close(
            ols_slope(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]).unwrap(),
            2.0,
            1e-12
        ));
        assert!(close(
            ols_slope(&[1.0, 2.0, 3.0, 4.0], &[40.0, 42.0, 41.0, 45.0]).unwrap(),
            1.4,
            1e-12
        ));
        assert_eq!(ols_slope(&[1.0], &[2.0]), None);
        assert_eq!(ols_slope(&[2.0, 2.0], &[1.0, 5.0]), None);
    }

    #[test]
    fn alpha_matches_a_hand_computation() {
        // 3 items, 4 respondents. Item variances 2.25, 0.9167, 0.9167 (sum 4.0833);
        // totals 6, 9, 11, 13 -> variance 8.9167; alpha = 1.5 * (1 - 4.0833/8.9167) = 0.81308.
        let rows = vec![
            vec![1.0, 2.0, 3.0],
            vec![2.0, 3.0, 4.0],
            vec![4.0, 4.0, 3.0],
            vec![4.0, 4.0, 5.0],
        ];
        let alpha = cronbach_alpha(&rows).unwrap();
        let expected = 1.5 * (1.0 - (2.25 + 2.75 / 3.0 + 2.75 / 3.0) / (26.75 / 3.0));
        assert!(close(alpha, 0.813_084_112, 1e-9));
        assert!(close(alpha, expected, 1e-12), "{alpha} vs {expected}");
        assert_eq!(cronbach_alpha(&[vec![1.0, 2.0]]), None);
        assert_eq!(cronbach_alpha(&[vec![1.0, 1.0], vec![1.0, 1.0]]), None);
    }

    #[test]
    fn rci_matches_the_instruments_worked_check() {
        // SD 8, r .90: S_diff = 3.5777; 40 -> 48 gives RCI 2.236, improved.
        assert!(close(s_diff(8.0, 0.9), 3.577_708_763_999_664, 1e-9));
        let (rci, class) = reliable_change(40.0, 48.0, 8.0, 0.9).unwrap();
        assert!(close(rci, 2.236_067_977_499_79, 1e-9));
        assert_eq!(class, ReliableChange::Improved);
        assert_eq!(
            reliable_change(48.0, 40.0, 8.0, 0.9).unwrap().1,
            ReliableChange::Deteriorated
        );
        assert_eq!(
            reliable_change(40.0, 44.0, 8.0, 0.9).unwrap().1,
            ReliableChange::Unchanged
        );
    }

    #[test]
    fn ci_uses_the_t_distribution() {
        // n = 5, mean 10, sd 2: t(0.975, 4) = 2.776445; half-width = 2.776445 * 2 / sqrt(5).
        let (lo, hi) = confidence_interval_95(10.0, 2.0, 5).unwrap();
        assert!(close(hi - 10.0, 2.776_445_105 * 2.0 / 5f64.sqrt(), 1e-6));
        assert!(close(10.0 - lo, hi - 10.0, 1e-12));
        assert_eq!(confidence_interval_95(10.0, 0.0, 1), None);
    }
}
