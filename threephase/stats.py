"""Statistics that tell a gain from noise, as a thin layer over statsmodels and scipy.

Runs of one setting share their data draws (``data.seed``) and training seeds, so a variant's run and its baseline's
run with the same (data_seed, seed) form a pair, and their difference removes what the draw and the seed do to both.

:func:`verdicts` answers one family of questions ("is this variant better than that baseline?") at once:

- **Differences in points**: ``100 × (metric(variant) − metric(baseline))`` per pair.
- **The unit of the interval**: with ≥ 2 data draws, the seeds of each draw are averaged and the interval is a
  Student-t interval over draws (``unit="draw"``): a user with other data meets draw-to-draw variation, so the
  interval must include it. With a single draw, the interval is over seeds (``unit="seed"``) and speaks only for
  that draw.
- **Holm within the family** (Holm, 1979) keeps the chance of any false "better"/"worse" in the family at most α.
- **Equivalence** is the paired TOST at ±``margin`` points: two one-sided t-tests that the difference is above
  −margin and below +margin.
- **Power**: ``mde`` is the smallest true difference the design detects with probability ``power`` by a two-sided
  t-test at the nominal α, given the observed SD of the unit differences and their count. α is nominal (not the Holm
  step's), so the mde is the optimistic end: under Holm the first test of a family of m runs at α/m.
- **Verdict**: ``better`` / ``worse`` when the Holm-adjusted p < α (by the sign of the difference); otherwise
  ``equivalent`` when the TOST p < α (the interval ±margin contains the difference at level α, uncorrected: a claim of
  equivalence is already the cautious one); otherwise ``undecided``. "Undecided" is never "equal".
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import DescrStatsW

COLUMNS = ["dataset", "model", "variant", "pairs", "diff", "ci_low", "ci_high", "covers_zero", "p_value"]
VERDICT_COLUMNS = ["variant", "baseline", "metric", "draws", "seeds", "pairs", "diff", "ci_low", "ci_high", "p_value",
                   "p_holm", "tost_p", "margin", "mde", "verdict", "unit", "sd_draw", "sd_seed"]
VERDICTS = ("better", "worse", "equivalent", "undecided")


def mean_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t ``confidence`` interval of ``values``; the interval is NaN for fewer than 2 values."""
    values = np.asarray([float(v) for v in values])
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    if len(values) < 2:
        return float(values[0]), math.nan, math.nan
    low, high = DescrStatsW(values).tconfint_mean(alpha=1 - confidence)
    return float(values.mean()), float(low), float(high)


def paired_p_value(diffs: Iterable[float]) -> float:
    """The two-sided p-value of the paired t-test that the mean difference is 0 (the test that matches the
    Student-t interval); 1 when every difference is 0; NaN for fewer than 2, or for equal non-zero differences,
    whose spread of 0 a t-test cannot judge."""
    diffs = [float(d) for d in diffs]
    if len(diffs) < 2:
        return math.nan
    if all(d == diffs[0] for d in diffs):
        return 1.0 if diffs[0] == 0 else math.nan
    return float(stats.ttest_1samp(diffs, 0.0).pvalue)


def tost_p_value(diffs: Iterable[float], margin: float) -> float:
    """The p-value of the paired TOST that the mean difference lies within ±``margin`` (the larger of the two
    one-sided p-values, statsmodels' ``ttost_mean``); NaN for fewer than 2 differences or a spread of 0."""
    diffs = np.asarray([float(d) for d in diffs])
    if len(diffs) < 2 or np.all(diffs == diffs[0]):
        return math.nan
    return float(DescrStatsW(diffs).ttost_mean(-margin, margin)[0])


def holm(p_values: Iterable[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (Holm, 1979), by statsmodels' ``multipletests``.
    Rejecting where the adjusted value is below α keeps the chance of any false rejection in the family at most α.
    NaN stays NaN and does not count in the family's size."""
    p_values = np.asarray([float(p) for p in p_values])
    adjusted = np.full(len(p_values), math.nan)
    known = ~np.isnan(p_values)
    if known.sum() == 1:  # a family of one is its own p
        adjusted[known] = p_values[known]
    elif known.any():
        # statsmodels' Holm branch calls gc.collect(), which takes a second or more in a process that holds torch
        # and pandas; frozen objects are skipped by it, and the result is the same.
        gc.freeze()
        try:
            adjusted[known] = multipletests(p_values[known], method="holm")[1]
        finally:
            gc.unfreeze()
    return adjusted.tolist()


def minimum_detectable(sd: float, units: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference (in the units of ``sd``) that a two-sided one-sample t-test at ``alpha``
    over ``units`` differences with this SD detects with probability ``power``; NaN for < 2 units or an unknown SD."""
    if units < 2 or not math.isfinite(sd):
        return math.nan
    return float(TTestPower().solve_power(nobs=units, alpha=alpha, power=power, alternative="two-sided")) * sd


def draws_needed(sd: float, difference: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """How many units (draws, or seeds of one draw) a two-sided t-test at ``alpha`` needs to detect a true mean
    difference of ``difference`` with probability ``power`` when the units' differences have SD ``sd``; at least 2."""
    if not (math.isfinite(sd) and sd >= 0 and math.isfinite(difference) and difference != 0):
        raise ValueError(f"draws_needed needs a finite sd >= 0 and a non-zero difference, got sd={sd}, "
                         f"difference={difference}: estimate the SD from at least 2 units first")
    if sd == 0:
        return 2
    n = TTestPower().solve_power(effect_size=abs(difference) / sd, alpha=alpha, power=power,
                                 alternative="two-sided")
    return max(2, math.ceil(float(np.atleast_1d(n)[0]) - 1e-9))


def variance_components(pairs: pd.DataFrame) -> tuple[float, float]:
    """(sd_draw, sd_seed) of the paired differences ``pairs["diff"]`` grouped by ``pairs["data_seed"]``, by the
    one-way random-effects ANOVA (method of moments, the textbook estimator that statsmodels' ``anova_lm`` would give
    the mean squares for, computed here from the group means: a formula model per comparison costs a second): sd_seed²
    = the within-draw mean square, sd_draw² = max(0, (between-draw mean square − within) / n₀), n₀ the group size of
    an unbalanced design. NaN where not estimable (sd_draw needs ≥ 2 draws, sd_seed a draw with ≥ 2 seeds)."""
    groups = pairs.astype({"diff": float}).groupby("data_seed")["diff"]
    sizes, means = groups.size(), groups.mean()
    k, n = len(sizes), int(sizes.sum())
    if n - k < 1:
        return math.nan, math.nan
    within = float(groups.var(ddof=0).mul(sizes).sum()) / (n - k)
    if k == 1:
        return math.nan, math.sqrt(within)
    between = float((sizes * (means - pairs["diff"].astype(float).mean()) ** 2).sum()) / (k - 1)
    n0 = (n - float((sizes ** 2).sum()) / n) / (k - 1)
    return math.sqrt(max(0.0, (between - within) / n0)), math.sqrt(within)


def _pairs(frame: pd.DataFrame, variant: str, baseline: str) -> pd.DataFrame:
    """The paired differences (points) of ``variant`` − ``baseline`` on the (data_seed, seed) both ran."""
    by_run = frame.groupby(["variant", "data_seed", "seed"])["value"].mean()
    if variant not in by_run.index.get_level_values(0) or baseline not in by_run.index.get_level_values(0):
        return pd.DataFrame(columns=["data_seed", "seed", "diff"])
    diff = (by_run.loc[variant] - by_run.loc[baseline]).dropna()
    return diff.rename("diff").reset_index()


def verdicts(records: Iterable[Mapping[str, Any]], comparisons: list[tuple[str, str]], *, metric: str = "accuracy",
             margin: float = 1.5, alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """One row per ``(variant, baseline)`` in ``comparisons`` (one Holm family), in ``VERDICT_COLUMNS``.

    ``records`` are run records (``metrics.json`` dicts) with ``variant``, ``seed``, ``data_seed`` and ``metric`` as
    a fraction; runs repeated on the same (variant, data_seed, seed) are averaged. Differences are in points and
    paired on (data_seed, seed). With ≥ 2 draws the seeds of each draw are averaged and the interval, t-test, TOST and
    mde are over draws (``unit="draw"``); with one draw, over seeds (``unit="seed"``). Fewer than 2 units give NaN
    statistics and the verdict ``undecided``. ``sd_draw`` / ``sd_seed`` come from :func:`variance_components`.
    See the module's docstring for the verdict rule."""
    rows = [dict(r) for r in records]
    for r in rows:
        missing = [k for k in ("variant", "seed", "data_seed", metric) if k not in r]
        if missing:
            raise ValueError(f"a run record lacks {missing} (has {sorted(r)}): pass metrics.json records, which "
                             f"carry variant, seed, data_seed and the metric")
    if len(set(comparisons)) != len(comparisons):
        raise ValueError(f"comparisons repeat within one family: {comparisons}; list each (variant, baseline) once")
    frame = pd.DataFrame({"variant": [r["variant"] for r in rows], "data_seed": [r["data_seed"] for r in rows],
                          "seed": [r["seed"] for r in rows], "value": [100 * float(r[metric]) for r in rows]})
    out = []
    for variant, baseline in comparisons:
        pairs = _pairs(frame, variant, baseline)
        draws = pairs["data_seed"].nunique()
        unit = "draw" if draws >= 2 else "seed"
        units = pairs.groupby("data_seed")["diff"].mean() if unit == "draw" else pairs["diff"]
        diff, low, high = mean_interval(units, 1 - alpha)
        sd = float(units.std(ddof=1)) if len(units) >= 2 else math.nan
        sd_draw, sd_seed = variance_components(pairs) if len(pairs) else (math.nan, math.nan)
        out.append({"variant": variant, "baseline": baseline, "metric": metric, "draws": draws,
                    "seeds": pairs["seed"].nunique(), "pairs": len(pairs), "diff": diff, "ci_low": low,
                    "ci_high": high, "p_value": paired_p_value(units), "tost_p": tost_p_value(units, margin),
                    "margin": margin, "mde": minimum_detectable(sd, len(units), alpha, power), "unit": unit,
                    "sd_draw": sd_draw, "sd_seed": sd_seed})
    table = pd.DataFrame(out, columns=[c for c in VERDICT_COLUMNS if c not in ("p_holm", "verdict")])
    table["p_holm"] = holm(table["p_value"])
    table["verdict"] = [verdict(r, alpha) for r in table.to_dict("records")]
    return table[VERDICT_COLUMNS]


def verdict(row: Mapping[str, Any], alpha: float = 0.05) -> str:
    """The verdict rule: ``better``/``worse`` when ``p_holm`` < α, else ``equivalent`` when ``tost_p`` < α, else
    ``undecided`` (NaN p-values never decide)."""
    if row["p_holm"] < alpha:
        return "better" if row["diff"] > 0 else "worse"
    if row["tost_p"] < alpha:
        return "equivalent"
    return "undecided"


def _signed(x: float) -> str:
    """``x`` to one decimal with its sign and a true minus; a value that rounds to 0 reads +0.0, not −0.0."""
    return f"{round(x, 1) + 0.0:+.1f}".replace("-", "−")


def verdict_sentence(row: Mapping[str, Any], target: float = 2.0, power: float = 0.8, alpha: float = 0.05) -> str:
    """One plain sentence for one row of :func:`verdicts`: its verdict, difference and interval, the unit count,
    what the design can detect, and (when the mde exceeds ``target`` points) about how many units would detect it."""
    n = row["draws"] if row["unit"] == "draw" else row["seeds"]
    unit = ("draw" if row["unit"] == "draw" else "seed of one draw") if n == 1 else (
        "draws" if row["unit"] == "draw" else "seeds of one draw")
    if not row["pairs"]:
        return f"{row['variant']} vs {row['baseline']}: not run yet."
    head = f"{row['variant']} vs {row['baseline']}: {row['verdict']}: "
    if not math.isfinite(row["ci_low"]):
        return head + f"{_signed(row['diff'])} points from {n} {unit}, too few for an interval."
    if row["ci_low"] == row["ci_high"]:  # a spread of 0 (e.g. every run scores 100% on a small test split)
        return head + (f"{_signed(row['diff'])} points in each of the {n} {unit}: with no spread no test can judge the "
                       "difference; a larger test split or harder data would show one.")
    text = (head + f"{_signed(row['diff'])} points [{_signed(row['ci_low'])}, {_signed(row['ci_high'])}] over {n} "
            f"{unit}; this design detects {row['mde']:.1f} points at {power:.0%} power")
    sd = row["mde"] / minimum_detectable(1.0, n, alpha, power) if math.isfinite(row["mde"]) else math.nan
    if math.isfinite(sd) and row["mde"] > target:
        more = draws_needed(sd, target, alpha, power)
        text += f"; about {more} {'draws' if row['unit'] == 'draw' else 'seeds'} would detect {target:g} points"
    return text + "."


def paired_differences(records: Iterable[Mapping[str, Any]], baseline: str = "ft", metric: str = "accuracy",
                       confidence: float = 0.95) -> pd.DataFrame:
    """One row per (dataset, model, variant other than ``baseline``): the mean over shared seeds of
    ``100 × (metric(variant) − metric(baseline))``, its interval, and whether the interval covers 0.

    ``records`` are run records (``metrics.json`` / ``results.json`` dicts) with ``dataset``, ``model``,
    ``variant``, ``seed`` and the metric; ``model`` is compared as given. One data draw is assumed (Table 4's
    design); :func:`verdicts` handles several."""
    frame = pd.DataFrame([{k: r[k] for k in ("dataset", "model", "variant", "seed")} | {"value": 100 * r[metric]}
                          for r in records])
    rows = []
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    for (dataset, model), group in frame.groupby(["dataset", "model"], sort=False):
        base = group[group["variant"] == baseline].groupby("seed")["value"].mean()
        for variant, runs in group[group["variant"] != baseline].groupby("variant", sort=False):
            values = runs.groupby("seed")["value"].mean()
            shared = sorted(set(values.index) & set(base.index))
            diffs = [values[s] - base[s] for s in shared]
            mean, low, high = mean_interval(diffs, confidence)
            rows.append({"dataset": dataset, "model": model, "variant": variant, "pairs": len(shared), "diff": mean,
                         "ci_low": low, "ci_high": high,
                         "covers_zero": bool(not (low > 0 or high < 0)) if not math.isnan(low) else True,
                         "p_value": paired_p_value(diffs)})
    return pd.DataFrame(rows, columns=COLUMNS)
