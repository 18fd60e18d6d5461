#!/usr/bin/env python3
"""The outside oracle for ion-plan's compare (tests/compare_oracle.rs runs it).

A port of R's asymptotic interval for a two-sample location shift, read from R's
src/library/stats/R/wilcox.test.R (`wilcox.test.default`, two-sample case, `exact = FALSE`,
`correct = TRUE`, `conf.int = TRUE`, `digits.rank = Inf`): the function W(d) and `root`, with
scipy's brentq standing in for R's `uniroot` (both are Brent's zeroin). One deliberate
difference: R's `tol.root` is 1e-4 absolute; here the tolerance is 1e-12 of [mumin, mumax], so
data in seconds is not judged to a tenth of a millisecond.

Beside the port, scipy's own test: `mannwhitneyu(x - mu, y, use_continuity=True,
alternative="two-sided", method="asymptotic")`, whose p-value must be at least 1 - c just inside
each end of the interval and below it just outside.

Reads JSON lines on stdin:
  {"id": I, "x": [[V, COUNT], ...], "y": [...], "c": C, "ours": {"lower", "upper", "estimate"}}
("ours" is null when ion-plan found no interval). Writes one JSON line per case:
  {"id": I, "median_x", "median_y",             -- numpy.median of the expanded values
   "port": null (R stops: all tied) or {"lower", "upper", "estimate",
           "estimate_lo", "estimate_hi",         -- where uncorrected W is 0: any point in it is
                                                    a root R's uniroot may return
           "mumin", "mumax", "lower_clamped", "upper_clamped"},
   "pvalues": null or {"lower_in", "lower_out", "upper_in", "upper_out", "eps",
                        "lower_jump", "upper_jump",  -- at ours ± eps; jump: the pairwise
                                                        difference nearest our bound
                        "one_step"}}                 -- both ends at one difference: the
                                                        interval is that point, with no inside
"""

import json
import sys

import numpy as np
from scipy.optimize import brentq
from scipy.stats import mannwhitneyu, norm, rankdata


class AllTied(Exception):
    """R: "cannot compute confidence interval when all observations are tied" (σ = 0)."""


def expand(pairs):
    values = np.array([p[0] for p in pairs], dtype=float)
    counts = np.array([p[1] for p in pairs], dtype=np.int64)
    return np.repeat(values, counts)


def make_w(x, y, correct):
    """R's W(d), for `alternative = "two.sided"`."""
    n_x, n_y = float(len(x)), float(len(y))

    def w(d):
        dr = rankdata(np.concatenate([x - d, y]))  # average ranks, as R's rank
        _, nties = np.unique(dr, return_counts=True)  # R's table(dr)
        nties = nties.astype(float)
        dz = dr[: len(x)].sum() - n_x * (n_x + 1) / 2 - n_x * n_y / 2
        correction = np.sign(dz) * 0.5 if correct else 0.0
        sigma = np.sqrt(
            (n_x * n_y / 12)
            * ((n_x + n_y + 1) - np.sum(nties**3 - nties) / ((n_x + n_y) * (n_x + n_y - 1)))
        )
        if sigma == 0:
            raise AllTied()
        return (dz - correction) / sigma

    return w


def port(x, y, c):
    """R's interval and estimate, or None where R stops."""
    alpha = 1 - c
    mumin = x.min() - y.max()
    mumax = x.max() - y.min()
    w = make_w(x, y, correct=True)
    try:
        w_mumin, w_mumax = w(mumin), w(mumax)
    except AllTied:
        return None
    tol = 1e-12 * (mumax - mumin)

    def root(zq):
        f_lower = w_mumin - zq
        if f_lower <= 0:
            return mumin
        f_upper = w_mumax - zq
        if f_upper >= 0:
            return mumax
        return brentq(lambda d: w(d) - zq, mumin, mumax, xtol=tol)

    lower = root(norm.ppf(alpha / 2, loc=0, scale=1) * -1)  # qnorm(alpha/2, lower.tail = FALSE)
    upper = root(norm.ppf(alpha / 2))
    if not mumin < mumax:
        return None  # uniroot: "lower < upper  is not fulfilled"
    w0 = make_w(x, y, correct=False)  # R: correct <- FALSE before the estimate's uniroot
    estimate = brentq(w0, mumin, mumax, xtol=tol)
    # The set of roots: from the last μ where W0 > 0 to the first where W0 < 0.
    estimate_lo = last_true(lambda d: w0(d) > 0, mumin, mumax, tol)
    estimate_hi = last_true(lambda d: w0(d) >= 0, mumin, mumax, tol)
    return {
        "lower": float(lower),
        "upper": float(upper),
        "estimate": float(estimate),
        "estimate_lo": float(estimate_lo),
        "estimate_hi": float(estimate_hi),
        "mumin": float(mumin),
        "mumax": float(mumax),
        "lower_clamped": bool(w_mumin - norm.ppf(1 - alpha / 2) <= 0),
        "upper_clamped": bool(w_mumax - norm.ppf(alpha / 2) >= 0),
    }


def last_true(pred, lo, hi, tol):
    """Where a predicate true on the left of [lo, hi] and false on the right turns false."""
    if not pred(lo):
        return lo
    if pred(hi):
        return hi
    while hi - lo > tol:
        mid = lo + (hi - lo) / 2
        if mid <= lo or mid >= hi:
            break
        if pred(mid):
            lo = mid
        else:
            hi = mid
    return lo + (hi - lo) / 2


def nearest_jump(x, y, mu):
    """The pairwise difference x_i - y_j nearest `mu` (where the p-value steps), how far it may
    be from the same difference reached from another pair (rounding: a few ulps of the values
    subtracted), and the distance from it to the nearest difference beyond that."""
    xs, ys = np.unique(x), np.unique(y)
    jump, spread = None, 0.0
    for xi in xs:
        d = xi - ys
        k = np.argmin(np.abs(d - mu))
        if jump is None or abs(d[k] - mu) < abs(jump - mu):
            jump, spread = d[k], max(abs(xi), abs(ys[k]))
    gap = np.inf
    for xi in xs:
        d = xi - ys
        # Differences of magnitude-1e6 values round by 1e-10; of 1e-9 values, by 1e-25.
        same = 1e-13 * (np.maximum(abs(xi), np.abs(ys)) + spread)
        apart = np.abs(d - jump)
        apart = apart[apart > same]
        if len(apart):
            gap = min(gap, apart.min())
    return float(jump), float(1e-13 * 2 * spread), float(gap)


def pvalue(x, y, mu):
    return float(
        mannwhitneyu(
            x - mu, y, use_continuity=True, alternative="two-sided", method="asymptotic"
        ).pvalue
    )


def pvalues(x, y, ours):
    data_range = max(x.max(), y.max()) - min(x.min(), y.min())
    lower_jump, lower_same, lower_gap = nearest_jump(x, y, ours["lower"])
    upper_jump, upper_same, upper_gap = nearest_jump(x, y, ours["upper"])
    # Inside the step next to each end, well clear of the rounding around it; never past the
    # other end.
    eps = min(lower_gap / 4, upper_gap / 4, 1e-4 * data_range)
    one_step = abs(upper_jump - lower_jump) <= lower_same + upper_same
    if not one_step:
        eps = min(eps, (ours["upper"] - ours["lower"]) / 4)
    return {
        "lower_in": pvalue(x, y, ours["lower"] + eps),
        "lower_out": pvalue(x, y, ours["lower"] - eps),
        "upper_in": pvalue(x, y, ours["upper"] - eps),
        "upper_out": pvalue(x, y, ours["upper"] + eps),
        "eps": float(eps),
        "lower_jump": lower_jump,
        "upper_jump": upper_jump,
        "one_step": bool(one_step),
    }


def main():
    for line in sys.stdin:
        case = json.loads(line)
        x, y = expand(case["x"]), expand(case["y"])
        answer = {
            "id": case["id"],
            "median_x": float(np.median(x)),
            "median_y": float(np.median(y)),
            "port": port(x, y, case["c"]),
            "pvalues": None,
        }
        if case["ours"] is not None:
            answer["pvalues"] = pvalues(x, y, case["ours"])
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
