"""The imbalance correction (eq. 4-6): resize ratios, new sizes and the resized dataset."""

from collections import Counter

import numpy as np
import pytest

from threephase.errors import ThreePhaseError
from threephase.imbalance import crossing_point, resize_curve, resize_dataset, resize_ratios, resized_sizes
from threephase.noise import ENGLISH_STOP_WORDS

WORKED_EXAMPLE = {"a": 1000, "b": 300, "c": 50, "d": 5}


def test_spec_worked_example():
    ratios = resize_ratios(WORKED_EXAMPLE)
    assert ratios == pytest.approx({"a": 1.0, "b": 1.0, "c": 1.7347, "d": 3.0680}, abs=1e-4)
    assert resized_sizes(WORKED_EXAMPLE) == {"a": 1000, "b": 300, "c": 87, "d": 15}


def test_largest_class_of_one_leaves_every_ratio_at_one():
    assert resize_ratios({"a": 1, "b": 1}) == {"a": 1.0, "b": 1.0}


def test_curve_end_points_and_crossing_point():
    largest, max_ratio = 1000, 4.0
    assert resize_curve(np.array([1.0, largest]), largest, max_ratio) == pytest.approx([max_ratio, 0.0])
    x = crossing_point(max_ratio, largest)
    assert resize_curve(x, largest, max_ratio) == pytest.approx(1.0)


def test_curve_needs_a_largest_class_above_one():
    with pytest.raises(ThreePhaseError, match=r"largest \(1\)"):
        resize_curve(1, 1)


def test_whole_copies_round_the_ratio():
    ratios = resize_ratios(WORKED_EXAMPLE, whole_copies=True)
    assert ratios == {"a": 1.0, "b": 1.0, "c": 2.0, "d": 3.0}
    assert resized_sizes(WORKED_EXAMPLE, whole_copies=True) == {"a": 1000, "b": 300, "c": 100, "d": 15}


def test_default_ratios_leave_a_roughly_balanced_dataset_alone():
    sizes = {intent: size for intent, size in enumerate([1900, 1850, 1880, 1810, 1860, 1900, 1884])}
    assert resized_sizes(sizes) == sizes


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"class_sizes": {}}, "empty"),
        ({"class_sizes": {"a": 10, "b": 0}}, "size 0"),
        ({"class_sizes": {"a": 10}, "min_ratio": 0.0}, "min_ratio=0.0"),
        ({"class_sizes": {"a": 10}, "max_ratio": -1.0}, "max_ratio=-1.0"),
        ({"class_sizes": {"a": 10}, "min_ratio": 5.0, "max_ratio": 4.0}, r"min_ratio \(5.0\)"),
    ],
)
def test_bad_input_raises_with_the_offending_value(kwargs, fragment):
    with pytest.raises(ThreePhaseError, match=fragment):
        resize_ratios(**kwargs)


def skewed_data():
    texts = [f"the big example number {i} of the first class" for i in range(200)]
    texts += [f"a small example {i} is in the second class" for i in range(10)]
    texts += [f"an odd case {i} of the tiny class" for i in range(3)]
    labels = ["big"] * 200 + ["small"] * 10 + ["tiny"] * 3
    return texts, labels


def test_resized_class_sizes_follow_resized_sizes():
    texts, labels = skewed_data()
    resized = resize_dataset(texts, labels, seed=1)
    assert resized.sizes_before == dict(Counter(labels))
    assert resized.sizes_after == resized_sizes(Counter(labels))
    assert dict(Counter(resized.labels)) == resized.sizes_after
    assert resized.texts[: len(texts)] == texts
    assert resized.source[: len(texts)] == list(range(len(texts)))


def test_extra_copies_use_every_example_once_before_any_repeats():
    texts, labels = skewed_data()
    resized = resize_dataset(texts, labels, seed=2, max_ratio=20.0)
    for label in ("small", "tiny"):
        members = {i for i, value in enumerate(labels) if value == label}
        copies = [s for s, value in zip(resized.source[len(texts):], resized.labels[len(texts):]) if value == label]
        assert len(copies) > len(members)
        for start in range(0, len(copies), len(members)):
            block = copies[start: start + len(members)]
            assert set(block) <= members
            assert len(set(block)) == len(block)


def test_copies_come_from_their_source_and_differ_from_it():
    texts, labels = skewed_data()
    resized = resize_dataset(texts, labels, seed=3)
    extra = list(zip(resized.texts, resized.source, resized.labels))[len(texts):]
    assert extra
    for text, source, label in extra:
        assert label == labels[source]
        original = texts[source].split()
        assert set(text.split()) <= set(original)
        assert text != texts[source]
        removed = Counter(original) - Counter(text.split())
        assert all(word in ENGLISH_STOP_WORDS for word in removed)


def test_without_stop_word_noise_copies_are_exact():
    texts, labels = skewed_data()
    noisy = resize_dataset(texts, labels, seed=3)
    exact = resize_dataset(texts, labels, seed=3, stop_word_noise=False)
    assert exact.source == noisy.source
    assert all(text == texts[source] for text, source in zip(exact.texts, exact.source))


def test_same_seed_same_output_and_different_seed_differs():
    texts, labels = skewed_data()
    assert resize_dataset(texts, labels, seed=5) == resize_dataset(texts, labels, seed=5)
    assert resize_dataset(texts, labels, seed=5).source != resize_dataset(texts, labels, seed=6).source


def test_length_mismatch_raises():
    with pytest.raises(ThreePhaseError, match="3 items but labels has 2"):
        resize_dataset(["a", "b", "c"], [0, 1])
