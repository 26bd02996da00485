//! Association statistics for the alliance-outcome analysis: Pearson's r with its Fisher-z
//! confidence interval, ordinary least squares with classical standard errors (solved by a
//! Householder QR decomposition of the design matrix, never by inverting X'X by hand), and
//! the one-way ANOVA intraclass correlation ICC(1). Pure and deterministic; every function
//! answers `None` where the statistic is undefined (zero variance, singular design, too few
//! observations).

use statrs::distribution::{ContinuousCDF, StudentsT};

/// The two-sided 97.5% normal quantile (Fisher-z intervals).
pub const Z_975: f64 = 1.959_963_984_540_054;

/// Pearson's product-moment correlation; `None` with fewer than 2 pairs or a zero variance.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 || y.len() != n {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// `tanh(atanh(r) +/- 1.959963984540054 / sqrt(n - 3))`; `None` for n <= 3.
pub fn fisher_ci(r: f64, n: usize) -> Option<(f64, f64)> {
    if n <= 3 {
        return None;
    }
    let z = r.atanh();
    let half = Z_975 / ((n - 3) as f64).sqrt();
    Some(((z - half).tanh(), (z + half).tanh()))
}

/// One coefficient with its classical inference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub estimate: f64,
    pub se: f64,
    pub t: f64,
    /// Two-sided, Student's t with the fit's residual degrees of freedom.
    pub p: f64,
    pub ci_lower: f64,
    pub ci_upper: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OlsFit {
    pub n: usize,
    /// Intercept first, then one per predictor column, in the order given.
    pub coefficients: Vec<Estimate>,
    pub r_squared: Option<f64>,
    pub df: usize,
    /// The residual sum of squares.
    pub rss: f64,
}

/// OLS of `y` on an intercept and the predictor columns. Classical standard errors:
/// sigma^2 = RSS / (n - p), cov = sigma^2 (X'X)^-1 (here R^-1 R^-T from X = QR); t =
/// estimate / se; p from Student's t with n - p degrees of freedom; CI = estimate +/-
/// t(0.975, n - p) se. `None` when n <= p or X is singular (to working precision).
pub fn ols(y: &[f64], predictors: &[&[f64]]) -> Option<OlsFit> {
    let n = y.len();
    let p = predictors.len() + 1;
    if n <= p || predictors.iter().any(|c| c.len() != n) {
        return None;
    }
    // Columns of X: the intercept, then the predictors.
    let mut columns: Vec<Vec<f64>> = Vec::with_capacity(p);
    columns.push(vec![1.0; n]);
    columns.extend(predictors.iter().map(|c| c.to_vec()));
    let mut qty = y.to_vec();
    let r = householder_qr(&mut columns, &mut qty)?;
    let beta = back_substitute(&r, qty.get(..p)?)?;
    let r_inv = upper_inverse(&r)?;

    let fitted = |i: usize| -> f64 {
        beta.iter()
            .enumerate()
            .map(|(j, b)| {
                b * if j == 0 {
                    1.0
                } else {
                    predictors.get(j - 1).and_then(|c| c.get(i)).copied().unwrap_or(0.0)
                }
            })
            .sum()
    };
    let rss: f64 = y.iter().enumerate().map(|(i, v)| (v - fitted(i)).powi(2)).sum();
    let mean = y.iter().sum::<f64>() / n as f64;
    let tss: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    let df = n - p;
    let sigma2 = rss / df as f64;
    let t_dist = StudentsT::new(0.0, 1.0, df as f64).ok()?;
    let t_crit = t_dist.inverse_cdf(0.975);
    let coefficients = (0..p)
        .map(|j| {
            // (X'X)^-1 = R^-1 R^-T: its diagonal is the squared norm of row j of R^-1.
            let var: f64 = r_inv.get(j).map_or(0.0, |row| row.iter().map(|v| v * v).sum());
            let estimate = beta.get(j).copied().unwrap_or(f64::NAN);
            let se = (sigma2 * var).sqrt();
            let t = estimate / se;
            Estimate {
                estimate,
                se,
                t,
                p: 2.0 * (1.0 - t_dist.cdf(t.abs())),
                ci_lower: estimate - t_crit * se,
                ci_upper: estimate + t_crit * se,
            }
        })
        .collect();
    Some(OlsFit {
        n,
        coefficients,
        r_squared: (tss > 0.0).then(|| 1.0 - rss / tss),
        df,
        rss,
    })
}

/// Householder QR of the columns (n x p, p <= n) in place; applies the reflections to `y`
/// (which becomes Q'y). Returns R (p x p, upper triangular, row-major), or `None` when a
/// column is (numerically) a combination of the earlier ones.
fn householder_qr(columns: &mut [Vec<f64>], y: &mut [f64]) -> Option<Vec<Vec<f64>>> {
    let p = columns.len();
    let n = y.len();
    let scale: f64 = columns
        .iter()
        .map(|c| c.iter().map(|v| v * v).sum::<f64>().sqrt())
        .fold(0.0, f64::max);
    let tolerance = scale * 1e-10;
    let mut r = vec![vec![0.0; p]; p];
    for k in 0..p {
        let (done, rest) = columns.split_at_mut(k + 1);
        let column = done.last_mut()?;
        let tail = column.get(k..)?;
        let norm = tail.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm <= tolerance {
            return None;
        }
        let head = *column.get(k)?;
        let alpha = if head > 0.0 { -norm } else { norm };
        // v = x - alpha e_k, stored in the column's tail.
        let mut v: Vec<f64> = tail.to_vec();
        *v.first_mut()? -= alpha;
        let v_norm2: f64 = v.iter().map(|x| x * x).sum();
        let reflect = |target: &mut [f64]| {
            let dot: f64 = v.iter().zip(target.iter()).map(|(a, b)| a * b).sum();
            let f = 2.0 * dot / v_norm2;
            for (t, a) in target.iter_mut().zip(&v) {
                *t -= f * a;
            }
        };
        if v_norm2 > 0.0 {
            for other in rest.iter_mut() {
                reflect(other.get_mut(k..)?);
            }
            reflect(y.get_mut(k..n)?);
        }
        *r.get_mut(k)?.get_mut(k)? = alpha;
        for (j, other) in rest.iter().enumerate() {
            *r.get_mut(k)?.get_mut(k + 1 + j)? = *other.get(k)?;
        }
    }
    Some(r)
}

/// Solves R b = c for upper-triangular R.
fn back_substitute(r: &[Vec<f64>], c: &[f64]) -> Option<Vec<f64>> {
    let p = r.len();
    let mut b = vec![0.0; p];
    for i in (0..p).rev() {
        let row = r.get(i)?;
        let known: f64 = (i + 1..p)
            .map(|j| row.get(j).copied().unwrap_or(0.0) * b.get(j).copied().unwrap_or(0.0))
            .sum();
        *b.get_mut(i)? = (c.get(i)? - known) / row.get(i)?;
    }
    Some(b)
}

/// The inverse of an upper-triangular matrix (row-major).
fn upper_inverse(r: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let p = r.len();
    let mut inv = vec![vec![0.0; p]; p];
    for col in 0..p {
        // Solve R x = e_col.
        let e: Vec<f64> = (0..p).map(|i| if i == col { 1.0 } else { 0.0 }).collect();
        let x = back_substitute(r, &e)?;
        for (i, v) in x.into_iter().enumerate() {
            *inv.get_mut(i)?.get_mut(col)? = v;
        }
    }
    Some(inv)
}

/// ICC(1) from a one-way ANOVA over groups, not truncated at 0:
/// `(MSB - MSW) / (MSB + (n0 - 1) MSW)`, `n0 = (N - sum(n_j^2) / N) / (J - 1)`.
/// `None` with fewer than 2 groups, no within-group degrees of freedom, or a zero denominator.
pub fn icc1(groups: &[Vec<f64>]) -> Option<f64> {
    let j = groups.len();
    let big_n: usize = groups.iter().map(Vec::len).sum();
    if j < 2 || big_n <= j || groups.iter().any(Vec::is_empty) {
        return None;
    }
    let grand = groups.iter().flatten().sum::<f64>() / big_n as f64;
    let (mut ssb, mut ssw) = (0.0, 0.0);
    for g in groups {
        let m = g.iter().sum::<f64>() / g.len() as f64;
        ssb += g.len() as f64 * (m - grand).powi(2);
        ssw += g.iter().map(|v| (v - m).powi(2)).sum::<f64>();
    }
    let msb = ssb / (j - 1) as f64;
    let msw = ssw / (big_n - j) as f64;
    let sum_sq: f64 = groups.iter().map(|g| (g.len() * g.len()) as f64).sum();
    let n0 = (big_n as f64 - sum_sq / big_n as f64) / (j - 1) as f64;
    let denominator = msb + (n0 - 1.0) * msw;
    (denominator != 0.0).then(|| (msb - msw) / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn ols_recovers_an_exact_line_and_refuses_a_singular_design() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y: Vec<f64> = x.iter().map(|v| 2.0 + 3.0 * v).collect();
        let fit = ols(&y, &[&x]).unwrap();
        assert!(close(fit.coefficients[0].estimate, 2.0));
        assert!(close(fit.coefficients[1].estimate, 3.0));
        assert_eq!(fit.r_squared, Some(1.0));
        let twice: Vec<f64> = x.iter().map(|v| 2.0 * v).collect();
        assert!(ols(&y, &[&x, &twice]).is_none(), "collinear columns");
        assert!(ols(&y[..2], &[&x[..2]]).is_none(), "n <= p");
    }

    #[test]
    fn icc1_of_identical_groups_is_one_and_of_no_group_effect_is_low() {
        let same = vec![vec![1.0, 1.0], vec![5.0, 5.0], vec![9.0, 9.0]];
        assert!(close(icc1(&same).unwrap(), 1.0));
        let none = vec![vec![1.0, 9.0], vec![1.0, 9.0], vec![1.0, 9.0]];
        assert!(icc1(&none).unwrap() < 0.0);
    }

    /// Relative 1e-9 (absolute for values near 0, such as tiny p-values).
    fn golden_close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-9 * want.abs().max(1e-3)
    }

    #[test]
    fn golden_vectors_from_scipy_and_statsmodels() {
        let golden: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/golden/alliance_outcome.json")).unwrap();
        let column = |d: &serde_json::Value, name: &str| -> Vec<f64> {
            d["input"][name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        let check = |what: &str, got: f64, want: &serde_json::Value| {
            let want = want.as_f64().unwrap();
            assert!(golden_close(got, want), "{what}: {got} vs {want}");
        };
        let check_estimate = |what: &str, got: &Estimate, want: &serde_json::Value| {
            check(&format!("{what}.estimate"), got.estimate, &want["estimate"]);
            check(&format!("{what}.se"), got.se, &want["se"]);
            check(&format!("{what}.t"), got.t, &want["t"]);
            check(&format!("{what}.p"), got.p, &want["p"]);
            check(&format!("{what}.ci_lower"), got.ci_lower, &want["ci_lower"]);
            check(&format!("{what}.ci_upper"), got.ci_upper, &want["ci_upper"]);
        };
        for d in golden["datasets"].as_array().unwrap() {
            let e = &d["expected"];
            let (a, imp) = (column(d, "alliance"), column(d, "improvement"));
            let n = a.len();
            let r = pearson(&a, &imp).unwrap();
            check("r", r, &e["correlation"]["r"]);
            let (lo, hi) = fisher_ci(r, n).unwrap();
            check("ci_lower", lo, &e["correlation"]["ci_lower"]);
            check("ci_upper", hi, &e["correlation"]["ci_upper"]);

            let (prior, base, later) = (
                column(d, "prior_change"),
                column(d, "baseline"),
                column(d, "later_change"),
            );
            let fit = ols(&later, &[&a, &prior, &base]).unwrap();
            check("r_squared", fit.r_squared.unwrap(), &e["lagged"]["r_squared"]);
            for (i, name) in ["intercept", "alliance", "prior_change", "baseline"].iter().enumerate() {
                check_estimate(name, &fit.coefficients[i], &e["lagged"]["coefficients"][name]);
            }

            let clinicians: Vec<&str> = d["input"]["clinician"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let mut names: Vec<&str> = clinicians.clone();
            names.sort();
            names.dedup();
            let grouped = |values: &[f64]| -> Vec<Vec<f64>> {
                names
                    .iter()
                    .map(|c| {
                        clinicians
                            .iter()
                            .zip(values)
                            .filter(|(g, _)| *g == c)
                            .map(|(_, v)| *v)
                            .collect()
                    })
                    .collect()
            };
            check("outcome_icc1", icc1(&grouped(&imp)).unwrap(), &e["outcome_icc1"]);
            check("alliance_icc1", icc1(&grouped(&a)).unwrap(), &e["alliance_icc1"]);
            let mean_of = |c: &str| {
                let g: Vec<f64> = clinicians
                    .iter()
                    .zip(&a)
                    .filter(|(x, _)| **x == c)
                    .map(|(_, v)| *v)
                    .collect();
                g.iter().sum::<f64>() / g.len() as f64
            };
            let between: Vec<f64> = clinicians.iter().map(|c| mean_of(c)).collect();
            let within: Vec<f64> = a.iter().zip(&between).map(|(v, m)| v - m).collect();
            let wb = ols(&imp, &[&within, &between]).unwrap();
            for (i, name) in ["intercept", "within", "between"].iter().enumerate() {
                check_estimate(name, &wb.coefficients[i], &e["within_between"][name]);
            }
        }
    }

    fn sample() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
        (4usize..40).prop_flat_map(|n| {
            (
                prop::collection::vec(-50.0f64..50.0, n),
                prop::collection::vec(-50.0f64..50.0, n),
            )
        })
    }

    proptest! {
        #[test]
        fn r_is_bounded_and_symmetric((x, y) in sample()) {
            if let Some(r) = pearson(&x, &y) {
                prop_assert!((-1.0..=1.0).contains(&r));
                prop_assert!(close(r, pearson(&y, &x).unwrap()));
            }
        }

        #[test]
        fn r_and_t_are_invariant_to_affine_rescaling_of_the_alliance(
            (x, y) in sample(), a in 0.1f64..10.0, b in -100.0f64..100.0
        ) {
            let scaled: Vec<f64> = x.iter().map(|v| a * v + b).collect();
            if let (Some(r1), Some(r2)) = (pearson(&x, &y), pearson(&scaled, &y)) {
                prop_assert!((r1 - r2).abs() < 1e-9);
            }
            if let (Some(f1), Some(f2)) = (ols(&y, &[&x]), ols(&y, &[&scaled])) {
                prop_assert!((f1.coefficients[1].t - f2.coefficients[1].t).abs() < 1e-6 * f1.coefficients[1].t.abs().max(1.0));
            }
        }

        #[test]
        fn ols_residuals_are_orthogonal_to_every_column(
            (x, y) in sample(), seed in prop::collection::vec(-5.0f64..5.0, 40)
        ) {
            let z: Vec<f64> = x.iter().zip(&seed).map(|(a, s)| a * 0.3 + s).collect();
            if let Some(fit) = ols(&y, &[&x, &z]) {
                let b: Vec<f64> = fit.coefficients.iter().map(|c| c.estimate).collect();
                let residuals: Vec<f64> = (0..y.len()).map(|i| y[i] - b[0] - b[1] * x[i] - b[2] * z[i]).collect();
                let scale: f64 = y.iter().map(|v| v.abs()).sum::<f64>().max(1.0) * 50.0;
                for column in [vec![1.0; y.len()], x.clone(), z.clone()] {
                    let dot: f64 = residuals.iter().zip(&column).map(|(r, c)| r * c).sum();
                    prop_assert!(dot.abs() < 1e-8 * scale * y.len() as f64, "dot {dot}");
                }
            }
        }

        #[test]
        fn icc1_stays_in_range_for_any_design(values in prop::collection::vec(0.0f64..30.0, 6..60), groups in 2usize..6) {
            let mut design = vec![Vec::new(); groups];
            for (i, v) in values.iter().enumerate() {
                design[i % groups].push(*v);
            }
            if let Some(icc) = icc1(&design) {
                // Not truncated: it may be negative, down to -1/(n0 - 1), but never above 1.
                prop_assert!(icc <= 1.0 + 1e-12);
                // MSB >= 0, so ICC >= -1 / (n0 - 1) with n0 as in the formula.
                let big_n = values.len() as f64;
                let sum_sq: f64 = design.iter().map(|g| (g.len() * g.len()) as f64).sum();
                let n0 = (big_n - sum_sq / big_n) / (groups - 1) as f64;
                prop_assert!(n0 <= 1.0 || icc >= -1.0 / (n0 - 1.0) - 1e-9, "icc {icc}, n0 {n0}");
            }
        }
    }
}
