#!/usr/bin/env python3
"""Checks qnet's report statistics (src/many/stats.rs) against rliable 1.2.0, without any qnet code.

Usage: check_rliable.py INPUT_JSON

INPUT_JSON: {"reps": 50000, "confidence": 0.95, "profile_reps": 2000,
             "groups": {"a": [score per run, ...], "b": [...]},
             "results": {"a": {"threshold": 475,
                               "iqm": x, "iqm_ci": [lo, hi], "median": x, "median_ci": [lo, hi],
                               "mean": x, "mean_ci": [lo, hi],
                               "success_rate": x, "success_rate_ci": [lo, hi],
                               "profile": {"taus": [...], "fraction": [...], "ci": [[lo, hi], ...]}},
                         ...},
             "probability_of_improvement": [{"x": "a", "y": "b", "value": p, "ci": [lo, hi]}, ...]}
"reps" is the number of bootstrap replicates qnet used for every interval but the profile's
("profile_reps"); this script uses the same numbers. "profile" is optional.

Each group is scored as rliable scores one task: an array shaped (runs, 1). Checks that
- iqm, mean, probability_of_improvement equal rliable.metrics.aggregate_iqm, aggregate_mean and
  probability_of_improvement, median equals numpy.median of the runs (rliable's aggregate_median
  is the median over tasks of per-task means: for one task, the mean), success_rate equals
  mean(scores >= threshold), and the profile equals rliable.library.score_distributions (what
  create_performance_profile computes: mean(scores > tau)), all to 1e-9 (relative);
- every interval endpoint agrees with rliable's percentile bootstrap up to Monte Carlo error.

The bootstraps are rliable's: library.StratifiedBootstrap (library.StratifiedIndependentBootstrap
for the probability of improvement, x and y resampled independently) and arch's
conf_int(method="percentile"), which is what library.get_interval_estimates runs. They are
called directly so that one set of replicates also gives the quantiles around each endpoint.

Tolerance. qnet's lower endpoint is the empirical alpha-quantile (alpha = (1 - confidence) / 2)
of its own `reps` replicates; as a level of the exact bootstrap distribution it is off by a
standard deviation of sqrt(alpha (1 - alpha) / reps), and rliable's quantiles carry the same
error independently. So qnet's endpoint must lie between rliable's (alpha - delta)- and
(alpha + delta)-quantiles, delta = 4.5 sqrt(2 alpha (1 - alpha) / reps) (4.5 standard deviations:
about 7e-6 false alarms per endpoint); likewise the upper endpoint around 1 - alpha. For 50,000
replicates and 95% intervals delta = 0.0044: the lower end must be a 2.06%..2.94% quantile of
rliable's replicates. Expressed as a quantile level, the tolerance needs no guess at the scale of
the scores and holds for the lumpy bootstrap distributions of heavily tied CartPole returns; in
score units it is about 0.07 bootstrap standard errors for a smooth statistic. It still catches
a wrong percentile, a wrong number of runs per resample or a wrong statistic. A slack of 1e-9
(relative) covers floating-point noise.
Prints one OK line, or exits non-zero with the reason on stderr.
"""

import json
import math
import sys

import numpy as np
from rliable import library, metrics

POINT_TOLERANCE = 1e-9
SIGMAS = 4.5
SEED = 20211206  # rliable's bootstraps draw from numpy's global generator


class CheckFailed(Exception):
    """A check did not pass; the message says which and why."""


def check_point(name, got, want):
    if not math.isclose(got, want, rel_tol=POINT_TOLERANCE, abs_tol=1e-12):
        raise CheckFailed(f"{name}: qnet has {got!r}, rliable {want!r} (tolerance {POINT_TOLERANCE}, relative)")


def level_delta(reps, confidence):
    """The quantile-level tolerance of an endpoint of `reps` replicates."""
    alpha = (1.0 - confidence) / 2
    return SIGMAS * math.sqrt(2 * alpha * (1 - alpha) / reps)


def bootstrap_bands(bs, func, reps, confidence):
    """rliable's nominal interval and the lo/hi quantile bands around its endpoints, per output."""
    delta = level_delta(reps, confidence)
    nominal = bs.conf_int(func, reps=reps, size=confidence, method="percentile")
    # reuse=True: the same replicates, other quantiles (needs the same func object and reps).
    inner = bs.conf_int(func, reps=reps, size=max(confidence - 2 * delta, 1e-6), method="percentile", reuse=True)
    outer = bs.conf_int(func, reps=reps, size=min(confidence + 2 * delta, 1 - 1e-9), method="percentile", reuse=True)
    # Rows: lower bounds, upper bounds; one column per output of func.
    return nominal, (outer[0], inner[0]), (inner[1], outer[1])


def check_interval(name, got, nominal, lo_band, hi_band):
    ends = (("lower", got[0], lo_band, nominal[0]), ("upper", got[1], hi_band, nominal[1]))
    for end, value, (low, high), want in ((e, float(v), (float(lo), float(hi)), float(w)) for e, v, (lo, hi), w in ends):
        slack = POINT_TOLERANCE * max(abs(low), abs(high), 1.0)
        if not low - slack <= value <= high + slack:
            raise CheckFailed(
                f"{name}: {end} end {value!r} is off rliable's {want!r} by {value - want:.4g}, "
                f"outside its Monte Carlo band [{low!r}, {high!r}]"
            )


def check_statistic(name, scores, func, got_point, got_ci, reps, confidence):
    check_point(name, got_point, float(func(scores)[0]))
    bs = library.StratifiedBootstrap(scores)
    nominal, lo_band, hi_band = bootstrap_bands(bs, func, reps, confidence)
    check_interval(f"{name} interval", got_ci, nominal[:, 0], (lo_band[0][0], lo_band[1][0]), (hi_band[0][0], hi_band[1][0]))


def check_profile(name, scores, profile, reps, confidence):
    taus = np.asarray(profile["taus"], dtype=float)
    func = lambda s: library.score_distributions(s, taus)  # noqa: E731 (one object for reuse)
    want = func(scores)
    if len(profile["fraction"]) != len(taus) or len(profile["ci"]) != len(taus):
        raise CheckFailed(f"{name}: {len(taus)} taus but {len(profile['fraction'])} fractions, {len(profile['ci'])} intervals")
    for tau, got, w in zip(taus, profile["fraction"], want):
        check_point(f"{name} at tau={tau}", got, float(w))
    bs = library.StratifiedBootstrap(scores)
    nominal, lo_band, hi_band = bootstrap_bands(bs, func, reps, confidence)
    for i, tau in enumerate(taus):
        bands = ((lo_band[0][i], lo_band[1][i]), (hi_band[0][i], hi_band[1][i]))
        check_interval(f"{name} interval at tau={tau}", profile["ci"][i], nominal[:, i], *bands)


def check_group(name, runs, res, reps, profile_reps, confidence):
    scores = np.asarray(runs, dtype=float).reshape(-1, 1)
    threshold = float(res["threshold"])
    funcs = {
        "iqm": lambda s: np.array([metrics.aggregate_iqm(s)]),
        "median": lambda s: np.array([np.median(s)]),
        "mean": lambda s: np.array([metrics.aggregate_mean(s)]),
        "success_rate": lambda s: np.array([np.mean(s >= threshold)]),
    }
    for stat, func in funcs.items():
        check_statistic(f"{name}: {stat}", scores, func, res[stat], res[f"{stat}_ci"], reps, confidence)
    if "profile" in res:
        check_profile(f"{name}: performance profile", scores, res["profile"], profile_reps, confidence)


def check_improvement(entry, groups, reps, confidence):
    name = f"P({entry['x']} > {entry['y']})"
    x = np.asarray(groups[entry["x"]], dtype=float).reshape(-1, 1)
    y = np.asarray(groups[entry["y"]], dtype=float).reshape(-1, 1)
    func = lambda a, b: np.array([metrics.probability_of_improvement(a, b)])  # noqa: E731
    check_point(name, entry["value"], float(func(x, y)[0]))
    bs = library.StratifiedIndependentBootstrap(x, y)
    nominal, lo_band, hi_band = bootstrap_bands(bs, func, reps, confidence)
    check_interval(f"{name} interval", entry["ci"], nominal[:, 0], (lo_band[0][0], lo_band[1][0]), (hi_band[0][0], hi_band[1][0]))


def check(input_json):
    with open(input_json, encoding="utf-8") as f:
        data = json.load(f)
    reps, confidence = int(data["reps"]), float(data["confidence"])
    profile_reps = int(data.get("profile_reps", reps))
    groups, results = data["groups"], data["results"]
    if set(results) != set(groups):
        raise CheckFailed(f"results cover groups {sorted(results)}, the input has {sorted(groups)}")
    np.random.seed(SEED)
    for name in sorted(groups):
        if not groups[name]:
            raise CheckFailed(f"group {name!r} has no scores")
        check_group(name, groups[name], results[name], reps, profile_reps, confidence)
    pairs = data.get("probability_of_improvement", [])
    for entry in pairs:
        check_improvement(entry, groups, reps, confidence)
    return len(groups), len(pairs), reps, level_delta(reps, confidence)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        n_groups, n_pairs, reps, delta = check(argv[1])
    except KeyError as e:
        print(f"check_rliable: FAIL: {argv[1]} lacks the key {e}", file=sys.stderr)
        return 1
    except (CheckFailed, OSError, TypeError, ValueError) as e:
        print(f"check_rliable: FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(
        f"check_rliable: OK: {n_groups} groups, {n_pairs} pairs: point estimates match rliable to "
        f"{POINT_TOLERANCE}, interval ends within rliable's bootstrap quantiles at level +-{delta:.4f} ({reps} reps)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
