"""Paired differences to the baseline over seeds, with Student-t intervals."""

import math

import pytest
from scipy import stats as scipy_stats

from threephase.stats import mean_interval, paired_differences


def test_mean_interval_matches_the_t_distribution():
    values = [1.0, 2.0, 4.0]
    mean, low, high = mean_interval(values)
    sd = scipy_stats.tstd(values)
    half = scipy_stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((7 / 3, 7 / 3 - half, 7 / 3 + half))
    assert math.isnan(mean_interval([3.0])[1]) and mean_interval([3.0])[0] == 3.0


def records(variant, accuracies):
    return [{"dataset": "snips2", "model": "m", "variant": variant, "seed": s, "accuracy": a}
            for s, a in enumerate(accuracies)]


def test_paired_differences_pair_runs_by_seed():
    runs = (records("ft", [0.90, 0.80, 0.85, 0.80, 0.90]) + records("three-phase", [0.92, 0.83, 0.86, 0.82, 0.92])
            + records("joint", [0.95, 0.75, 0.86, 0.80, 0.90]))
    table = paired_differences(runs).set_index("variant")
    gain = table.loc["three-phase"]
    assert gain["pairs"] == 5 and gain["diff"] == pytest.approx(2.0)
    assert gain["ci_low"] > 0 and not gain["covers_zero"]  # +2, +3, +1, +2, +2: consistent across seeds
    noisy = table.loc["joint"]
    assert noisy["diff"] == pytest.approx(0.2) and noisy["covers_zero"]  # +5, -5, +1, 0, 0
    assert "ft" not in table.index


def test_only_shared_seeds_are_paired():
    runs = records("ft", [0.9, 0.8]) + [{"dataset": "snips2", "model": "m", "variant": "cl-ft", "seed": 1,
                                         "accuracy": 0.85}]
    row = paired_differences(runs).iloc[0]
    assert row["pairs"] == 1 and row["diff"] == pytest.approx(5.0) and math.isnan(row["ci_low"]) and row["covers_zero"]


def test_holm_matches_the_textbook_example():
    from threephase.stats import holm

    # Four p-values: 0.01 x 4 = 0.04, 0.02 x 3 = 0.06, 0.03 x 2 = 0.06 (kept monotone), 0.04 x 1 = 0.04 -> 0.06.
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, float("nan")])[0] == 0.5


def test_paired_p_value_agrees_with_the_interval():
    from threephase.stats import mean_interval, paired_p_value

    clear, noisy = [2.0, 2.5, 3.0, 2.2], [2.0, -2.5, 3.0, -2.2]
    assert paired_p_value(clear) < 0.05 and mean_interval(clear)[1] > 0
    assert paired_p_value(noisy) > 0.05 and mean_interval(noisy)[1] < 0
