"""Paired differences, Holm, TOST, power and verdicts, checked against scipy / statsmodels on fixed data."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.power import TTestPower

from threephase.stats import (VERDICT_COLUMNS, draws_needed, holm, mean_interval, paired_differences, paired_p_value,
                              tost_p_value, variance_components, verdict_sentence, verdicts)


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
    # Four p-values: 0.01 x 4 = 0.04, 0.02 x 3 = 0.06, 0.03 x 2 = 0.06 (kept monotone), 0.04 x 1 = 0.04 -> 0.06.
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, float("nan")])[0] == 0.5 and math.isnan(holm([0.5, float("nan")])[1])


def test_paired_p_value_agrees_with_the_interval():
    clear, noisy = [2.0, 2.5, 3.0, 2.2], [2.0, -2.5, 3.0, -2.2]
    assert paired_p_value(clear) < 0.05 and mean_interval(clear)[1] > 0
    assert paired_p_value(noisy) > 0.05 and mean_interval(noisy)[1] < 0


def test_tost_is_the_larger_of_two_one_sided_t_tests():
    diffs = [0.2, -0.4, 0.5, 0.1, -0.1, 0.3]
    lower = scipy_stats.ttest_1samp(diffs, -1.5, alternative="greater").pvalue
    upper = scipy_stats.ttest_1samp(diffs, 1.5, alternative="less").pvalue
    assert tost_p_value(diffs, 1.5) == pytest.approx(max(lower, upper))
    assert math.isnan(tost_p_value([1.0], 1.5)) and math.isnan(tost_p_value([1.0, 1.0], 1.5))


def test_draws_needed_inverts_the_power_of_the_t_test():
    n = draws_needed(sd=2.0, difference=2.0)
    power = TTestPower().power(effect_size=1.0, nobs=n, alpha=0.05)
    assert power >= 0.8 > TTestPower().power(effect_size=1.0, nobs=n - 1, alpha=0.05)
    assert draws_needed(2.0, 1.0) > n  # half the difference needs more draws
    with pytest.raises(ValueError, match="at least 2 units"):
        draws_needed(float("nan"), 2.0)


def runs(variant, table):
    """Records from {data_seed: [accuracy per seed]}."""
    return [{"variant": variant, "data_seed": d, "seed": s, "accuracy": a}
            for d, accs in table.items() for s, a in enumerate(accs)]


def shifted(table, points, noise=None):
    """``table`` + ``points`` (as accuracy points), plus an optional per-run noise in points."""
    noise = noise or {}
    return {d: [a + (points + noise.get((d, s), 0.0)) / 100 for s, a in enumerate(accs)] for d, accs in table.items()}


BASE = {d: [0.70 + 0.03 * d + 0.01 * s for s in range(3)] for d in range(6)}  # draws differ far more than seeds
JITTER = {(d, s): ((d * 7 + s * 3) % 5 - 2) * 0.3 for d in range(6) for s in range(3)}  # -0.6..+0.6 points


def test_each_verdict_case():
    recs = (runs("ft", BASE) + runs("better", shifted(BASE, 5.0, JITTER)) + runs("worse", shifted(BASE, -5.0, JITTER))
            + runs("same", shifted(BASE, 0.0, JITTER))
            + runs("noisy", shifted(BASE, 1.0, {k: 16 * v for k, v in JITTER.items()})))
    table = verdicts(recs, [(v, "ft") for v in ("better", "worse", "same", "noisy")]).set_index("variant")
    assert table.loc["noisy", "mde"] > 2  # so its sentence says how many draws would detect 2 points
    assert "draws would detect 2 points" in verdict_sentence(table.reset_index().iloc[3])
    assert list(table.reset_index().columns) == VERDICT_COLUMNS
    assert table["verdict"].to_dict() == {"better": "better", "worse": "worse", "same": "equivalent",
                                          "noisy": "undecided"}
    assert (table["unit"] == "draw").all() and (table["draws"] == 6).all() and (table["seeds"] == 3).all()
    assert (table["pairs"] == 18).all() and table.loc["better", "diff"] == pytest.approx(5.0 + np.mean(
        list(JITTER.values())))


def test_verdicts_average_seeds_then_test_over_draws():
    recs = runs("ft", BASE) + runs("three-phase", shifted(BASE, 1.0, {k: 4 * v for k, v in JITTER.items()}))
    row = verdicts(recs, [("three-phase", "ft")]).iloc[0]
    units = [np.mean([1.0 + 4 * JITTER[d, s] for s in range(3)]) for d in range(6)]
    assert row["diff"] == pytest.approx(np.mean(units))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        scipy_stats.t.interval(0.95, 5, loc=np.mean(units), scale=scipy_stats.sem(units)))
    assert row["p_value"] == pytest.approx(scipy_stats.ttest_1samp(units, 0).pvalue)
    assert row["mde"] == pytest.approx(
        TTestPower().solve_power(nobs=6, alpha=0.05, power=0.8) * np.std(units, ddof=1))


def test_holm_runs_within_the_family():
    recs = (runs("ft", BASE) + runs("a", shifted(BASE, 0.4, JITTER)) + runs("b", shifted(BASE, 0.2, JITTER)))
    table = verdicts(recs, [("a", "ft"), ("b", "ft")])
    assert table["p_holm"].tolist() == pytest.approx(holm(table["p_value"]))
    alone = verdicts(recs, [("b", "ft")]).iloc[0]
    assert alone["p_holm"] == pytest.approx(alone["p_value"]) and alone["p_holm"] <= table.iloc[1]["p_holm"]


def test_one_draw_falls_back_to_seeds():
    one = {0: [0.80, 0.82, 0.81, 0.79, 0.83]}
    recs = runs("ft", one) + runs("cl-ft", shifted(one, 2.0, {(0, s): [0.5, -0.5, 0.2, 0.0, -0.2][s] for s in
                                                              range(5)}))
    row = verdicts(recs, [("cl-ft", "ft")]).iloc[0]
    assert row["unit"] == "seed" and row["draws"] == 1 and row["seeds"] == 5
    diffs = [2.5, 1.5, 2.2, 2.0, 1.8]
    assert row["p_value"] == pytest.approx(scipy_stats.ttest_1samp(diffs, 0).pvalue)
    assert math.isnan(row["sd_draw"]) and row["sd_seed"] == pytest.approx(np.std(diffs, ddof=1))
    assert "over 5 seeds of one draw" in verdict_sentence(row)
    single = verdicts(runs("ft", {0: [0.80]}) + runs("cl-ft", {0: [0.82]}), [("cl-ft", "ft")]).iloc[0]
    assert "+2.0 points from 1 seed of one draw, too few" in verdict_sentence(single)  # not "1 seeds"


def test_fewer_than_two_units_are_nan_and_undecided():
    recs = runs("ft", {0: [0.8]}) + runs("joint", {0: [0.9]}) + runs("ft", {1: [0.7]})
    row = verdicts(recs, [("joint", "ft"), ("setfit", "ft")]).set_index("variant")
    assert row.loc["joint", "pairs"] == 1 and row.loc["joint", "diff"] == pytest.approx(10.0)
    for column in ("ci_low", "p_value", "p_holm", "tost_p", "mde", "sd_draw", "sd_seed"):
        assert math.isnan(row.loc["joint", column])
    assert (row["verdict"] == "undecided").all() and row.loc["setfit", "pairs"] == 0
    assert verdict_sentence(row.reset_index().iloc[1]) == "setfit vs ft: not run yet."


def test_variance_components_separate_draws_from_seeds():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame([{"data_seed": d, "seed": s, "diff": shift + rng.normal(0, 0.5)}
                          for d, shift in enumerate(rng.normal(0, 3.0, 40)) for s in range(4)])
    sd_draw, sd_seed = variance_components(frame)
    assert sd_draw == pytest.approx(3.0, rel=0.3) and sd_seed == pytest.approx(0.5, rel=0.2)
    # The mean squares are statsmodels' one-way ANOVA's (unbalanced: one draw lost a seed).
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    frame = frame.drop(index=[0, 5])
    between, within = anova_lm(ols("diff ~ C(data_seed)", data=frame).fit())["mean_sq"].iloc[:2]
    sizes = frame.groupby("data_seed").size()
    n0 = (len(frame) - (sizes ** 2).sum() / len(frame)) / (len(sizes) - 1)
    assert variance_components(frame) == pytest.approx((math.sqrt((between - within) / n0), math.sqrt(within)))


def test_bad_input_names_the_fix():
    with pytest.raises(ValueError, match="data_seed"):
        verdicts([{"variant": "ft", "seed": 0, "accuracy": 0.9}], [("joint", "ft")])
    with pytest.raises(ValueError, match="each .* once"):
        verdicts([], [("joint", "ft"), ("joint", "ft")])


def test_verdict_sentence_says_what_the_design_can_detect():
    recs = runs("ft", BASE) + runs("three-phase", shifted(BASE, 1.0, {k: 6 * v for k, v in JITTER.items()}))
    row = verdicts(recs, [("three-phase", "ft")]).iloc[0]
    text = verdict_sentence(row)
    assert text.startswith(f"three-phase vs ft: {row['verdict']}: ") and "over 6 draws" in text
    assert f"detects {row['mde']:.1f} points at 80% power" in text
    if row["mde"] > 2:
        assert "draws would detect 2 points" in text


def test_verdict_sentence_of_a_difference_without_spread_says_no_test_can_judge_it():
    # Every run at 100% on a small test split: the differences are all 0, and "detects 0.0 points" would mislead.
    recs = runs("ft", BASE) + runs("three-phase", BASE)
    text = verdict_sentence(verdicts(recs, [("three-phase", "ft")]).iloc[0])
    assert "no test can judge" in text and "detects" not in text
