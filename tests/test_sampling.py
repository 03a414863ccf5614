"""Subsets that keep the class proportions (with a floor per class), and the long-tail dial."""

import pandas as pd
import pytest

from threephase import ThreePhaseError, load_data, preset_config
from threephase.data import class_sizes, sizes_before_subset
from threephase.sampling import long_tail, subsample


def frame(sizes):
    return pd.DataFrame([{"text": f"text {label} {i}", "label": label}
                         for label, size in enumerate(sizes) for i in range(size)])


def test_a_total_cap_keeps_proportions_and_tops_up_small_classes():
    drawn = subsample(frame([200, 100, 12]), total=62, seed=0, min_per_class=8)
    counts = drawn["label"].value_counts().to_dict()
    assert counts[0] == pytest.approx(2 * counts[1], abs=2)  # 2:1 kept
    assert counts[2] == 8  # stratified it would get 2; the floor gives 8
    few = subsample(frame([200, 100, 3]), total=30, seed=0, min_per_class=8)
    assert few["label"].value_counts()[2] == 3  # a class smaller than the floor keeps all it has


def test_per_class_cap_evens_the_classes_out():
    assert subsample(frame([50, 20, 9]), per_class=10, seed=0)["label"].value_counts().to_dict() == {0: 10, 1: 10, 2: 9}


def test_long_tail_sizes_fall_geometrically():
    sizes = long_tail(frame([100] * 7), 10, seed=0)["label"].value_counts().tolist()
    assert sizes == [100, 68, 46, 32, 22, 15, 10]
    again = long_tail(frame([100] * 7), 10, seed=0)
    assert again.equals(long_tail(frame([100] * 7), 10, seed=0))
    # Which class is rare is drawn per data seed, not fixed by the label ids.
    rarest = {long_tail(frame([100] * 7), 10, seed=s)["label"].value_counts().idxmin() for s in range(6)}
    assert len(rarest) > 1
    # With a total, the split has about that many rows and the ratio stays the factor.
    sized = long_tail(frame([100] * 7), 10, seed=0, total=86)["label"].value_counts().tolist()
    assert sized == [30, 20, 14, 9, 6, 4, 3]


def test_cpu_preset_trains_on_the_data_s_own_proportions(data_dir):
    config = preset_config("cpu", "snips2").data
    config.data_dir, config.imbalance_factor = data_dir, 10
    data = load_data(config)
    after = class_sizes(data["train"])
    before = sizes_before_subset(data["train"])
    sizes = list(after.values())
    assert max(sizes) / min(sizes) == pytest.approx(10, rel=0.05)  # the tail is the draw: no top-up bends it
    assert max(before.values()) / min(before.values()) == pytest.approx(10, rel=0.05)
    assert sum(sizes) <= 448 + 7 * 8 and min(sizes) >= 8


def test_imbalance_factor_below_one_is_refused():
    config = preset_config("cpu", "snips2")
    config.data.imbalance_factor = 0.5
    with pytest.raises(ThreePhaseError, match="imbalance_factor"):
        config.validate()


@pytest.mark.parametrize("sizes, total", [((444, 428), 871), ((50, 30, 20), 98), ((50, 30, 20), 99)])
def test_a_cap_just_below_the_split_size_still_draws(sizes, total):
    # scikit-learn cannot stratify fewer left-out rows than classes; the largest classes give one row each.
    drawn = subsample(frame(sizes), total=total, seed=0)
    assert len(drawn) == total and drawn["text"].is_unique
    left_out = pd.Series(sizes) - drawn["label"].value_counts().sort_index()
    assert list(left_out) == [1] * (sum(sizes) - total) + [0] * (len(sizes) - sum(sizes) + total)


def test_a_near_full_validation_cap_on_sst2(data_dir):
    data = load_data(dataset="sst2", data_dir=data_dir, max_validation_samples=871, max_train_samples=20,
                     max_test_samples=20)
    assert len(data["validation"]) == 871
