#!/usr/bin/env python3
"""Golden vectors for rapport's alliance-outcome statistics, computed by independent
implementations: scipy.stats.pearsonr (r and its Fisher-z interval), statsmodels OLS
(coefficients, classical standard errors, t, p, 95% intervals, R^2) and a statsmodels
one-way ANOVA (MSB, MSW) for ICC(1). The Rust tests compare with these at 1e-9 relative.

This script is the oracle: never regenerate the file from rapport's own output.

    python3 -m venv /tmp/stats && /tmp/stats/bin/pip install numpy scipy statsmodels pandas
    /tmp/stats/bin/python scripts/alliance_outcome_golden.py > tests/golden/alliance_outcome.json
"""
import json
import sys

import numpy as np
import pandas as pd
import scipy
import statsmodels
import statsmodels.api as sm
from scipy import stats
from statsmodels.formula.api import ols as formula_ols
from statsmodels.stats.anova import anova_lm


def course_data(seed, n, clinicians):
    rng = np.random.RandomState(seed)
    clinician = rng.randint(0, clinicians, size=n)
    effect = rng.normal(0, 1.5, size=clinicians)[clinician]
    alliance = np.round(rng.normal(45, 7, size=n) + effect, 1)
    baseline = np.round(rng.uniform(10, 24, size=n))
    prior = np.round(rng.normal(3, 2.5, size=n))
    later = np.round(0.15 * (alliance - 45) + 0.2 * prior - 0.1 * (baseline - 17) + rng.normal(2, 3, size=n) + 0.5 * effect)
    improvement = prior + later
    return {
        "alliance": alliance.tolist(),
        "baseline": baseline.tolist(),
        "prior_change": prior.tolist(),
        "later_change": later.tolist(),
        "improvement": improvement.tolist(),
        "clinician": [f"dr-{c}" for c in clinician.tolist()],
    }


def estimates(fit, names):
    ci = np.asarray(fit.conf_int(0.05))
    return {
        name: {
            "estimate": float(fit.params[i]),
            "se": float(fit.bse[i]),
            "t": float(fit.tvalues[i]),
            "p": float(fit.pvalues[i]),
            "ci_lower": float(ci[i][0]),
            "ci_upper": float(ci[i][1]),
        }
        for i, name in enumerate(names)
    }


def icc1(values, groups):
    frame = pd.DataFrame({"y": values, "g": groups})
    table = anova_lm(formula_ols("y ~ C(g)", data=frame).fit())
    msb = float(table.loc["C(g)", "mean_sq"])
    msw = float(table.loc["Residual", "mean_sq"])
    sizes = frame.groupby("g").size().to_numpy()
    big_n, j = sizes.sum(), len(sizes)
    n0 = (big_n - (sizes ** 2).sum() / big_n) / (j - 1)
    return (msb - msw) / (msb + (n0 - 1) * msw)


def expected(d):
    a, imp = np.array(d["alliance"]), np.array(d["improvement"])
    r = stats.pearsonr(a, imp)
    ci = r.confidence_interval(0.95)
    x = sm.add_constant(np.column_stack([a, d["prior_change"], d["baseline"]]))
    lagged = sm.OLS(np.array(d["later_change"]), x).fit()
    frame = pd.DataFrame({"a": a, "imp": imp, "g": d["clinician"]})
    mean_j = frame.groupby("g")["a"].transform("mean").to_numpy()
    wb = sm.OLS(imp, sm.add_constant(np.column_stack([a - mean_j, mean_j]))).fit()
    return {
        "correlation": {"r": float(r.statistic), "ci_lower": float(ci.low), "ci_upper": float(ci.high)},
        "lagged": {
            "n": int(lagged.nobs),
            "r_squared": float(lagged.rsquared),
            "coefficients": estimates(lagged, ["intercept", "alliance", "prior_change", "baseline"]),
        },
        "outcome_icc1": float(icc1(imp, d["clinician"])),
        "alliance_icc1": float(icc1(a, d["clinician"])),
        "within_between": estimates(wb, ["intercept", "within", "between"]),
    }


datasets = []
for seed, n, clinicians in [(7, 12, 3), (11, 40, 6), (2026, 200, 12)]:
    d = course_data(seed, n, clinicians)
    datasets.append({"seed": seed, "n": n, "input": d, "expected": expected(d)})
json.dump(
    {
        "generator": "scripts/alliance_outcome_golden.py",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "statsmodels": statsmodels.__version__},
        "datasets": datasets,
    },
    sys.stdout,
    indent=1,
)
print()
