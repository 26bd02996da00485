#!/usr/bin/env python3
"""Golden vectors for rapport's expected-response model ("not on track"), computed by an
independent implementation: statsmodels OLS of y on 1, x, ln t and x ln t over the points
with 2 <= t <= 20 of every course (x the course's intake, t the position in the course),
the residual SD sqrt(SSR / df_resid), nearest-rank intake percentiles, the curves at t = 1..12
and every point's expectation, bound (1.2816 residual SDs to the worse side; PHQ-9: lower is
better) and on-track flag. The Rust test posts the same data set as PHQ-9 responses and
compares at 1e-9 relative.

This script is the oracle: never regenerate the file from rapport's own output.

    python3 -m venv /tmp/stats && /tmp/stats/bin/pip install numpy scipy statsmodels pandas
    /tmp/stats/bin/python scripts/expected_response_golden.py > tests/golden/expected_response.json
"""
import json
import math

import numpy as np
import statsmodels
import statsmodels.api as sm

Z = 1.2816
SEED = 20261206
MAX_TOTAL = 24  # PHQ-9 with item 9 answered 0


def courses():
    """42 patients; patient 0 has two episodes (two courses), patient 1 a course of 23 points
    (t > 20 left out), patient 2 a course of two points (not a course)."""
    rng = np.random.RandomState(SEED)
    out = []
    for i in range(42):
        episodes = ["e1", "e2"] if i == 0 else ["e1"]
        for episode in episodes:
            length = 23 if i == 1 else 2 if i == 2 else int(rng.randint(3, 11))
            intake = int(rng.randint(8, 24))
            totals = [intake]
            for t in range(2, length + 1):
                mean = 2.0 + 0.75 * intake + (-1.2 - 0.08 * intake) * math.log(t)
                value = int(round(mean + rng.normal(0, 2.2)))
                totals.append(min(MAX_TOTAL, max(0, value)))
            out.append({"patient": f"p-exp-{i:02d}", "episode": episode, "totals": totals})
    return out


def nearest_rank(sorted_values, rank):
    return sorted_values[max(rank, 1) - 1]


def main():
    data = courses()
    counted = [c for c in data if len(c["totals"]) >= 3]
    rows = [(c["totals"][0], t, y) for c in counted for t, y in enumerate(c["totals"], start=1) if 2 <= t <= 20]
    x = np.array([r[0] for r in rows], dtype=float)
    t = np.array([r[1] for r in rows], dtype=float)
    y = np.array([r[2] for r in rows], dtype=float)
    design = np.column_stack([np.ones_like(x), x, np.log(t), x * np.log(t)])
    fit = sm.OLS(y, design).fit()
    b = fit.params
    sd = math.sqrt(fit.ssr / fit.df_resid)

    def expected(intake, pos):
        return b[0] + b[1] * intake + (b[2] + b[3] * intake) * math.log(pos)

    def bound(intake, pos):
        return expected(intake, pos) + Z * sd  # lower is better

    intakes = sorted(float(c["totals"][0]) for c in counted)
    n = len(intakes)
    percentiles = [nearest_rank(intakes, -(-n // 10)), nearest_rank(intakes, -(-n // 2)), nearest_rank(intakes, -(-9 * n // 10))]
    curves = [{"percentile": p, "intake": v,
               "points": [{"t": k, "expected": expected(v, k), "bound": bound(v, k)} for k in range(1, 13)]}
              for p, v in zip([10, 50, 90], percentiles)]
    points = []
    for c in counted:
        intake = c["totals"][0]
        for pos, total in enumerate(c["totals"], start=1):
            if 2 <= pos <= 20:
                e, bd = expected(intake, pos), bound(intake, pos)
                points.append({"patient": c["patient"], "episode": c["episode"], "t": pos, "total": total,
                               "expected": e, "bound": bd, "on_track": not (total > bd)})
    print(json.dumps({
        "generator": f"statsmodels {statsmodels.__version__} OLS, numpy {np.__version__}",
        "z": Z,
        "courses": data,
        "n_courses": len(counted),
        "n_points": len(rows),
        "coefficients": {"intercept": b[0], "intake": b[1], "log_t": b[2], "intake_log_t": b[3]},
        "residual_sd": sd,
        "curves": curves,
        "points": points,
    }, indent=1))


if __name__ == "__main__":
    main()
