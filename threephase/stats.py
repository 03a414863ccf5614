"""Statistics that tell a gain from noise: each variant's paired difference to a baseline over seeds, with a 95%
confidence interval.

Runs of one table share the data draw (``data.seed``) and differ by training seed, so the accuracy of a variant and
of ``ft`` for the same seed form a pair. The mean of the per-seed differences, with a Student-t interval, says how
large the gain is and whether seed-to-seed variation could explain it: an interval that covers 0 could.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from scipy import stats

COLUMNS = ["dataset", "model", "variant", "pairs", "diff", "ci_low", "ci_high", "covers_zero", "p_value"]


def mean_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t ``confidence`` interval of ``values``; the interval is NaN for fewer than 2 values."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_differences(records: Iterable[Mapping[str, Any]], baseline: str = "ft", metric: str = "accuracy",
                       confidence: float = 0.95) -> pd.DataFrame:
    """One row per (dataset, model, variant other than ``baseline``): the mean over shared seeds of
    ``100 × (metric(variant) − metric(baseline))``, its interval, and whether the interval covers 0.

    ``records`` are run records (``metrics.json`` / ``results.json`` dicts) with ``dataset``, ``model``,
    ``variant``, ``seed`` and the metric; ``model`` is compared as given."""
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


def holm(p_values: Iterable[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (Holm, 1979): the i-th smallest is multiplied by
    (m − i + 1), and the adjusted values are kept non-decreasing. Rejecting where the adjusted value is below α keeps
    the chance of any false rejection in the family at most α. NaN stays NaN and does not count in m."""
    p_values = [float(p) for p in p_values]
    order = sorted((i for i, p in enumerate(p_values) if not math.isnan(p)), key=lambda i: p_values[i])
    adjusted, running = [math.nan] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
