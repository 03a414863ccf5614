"""Scored pairs for phase 2: distinct, scored from the labels, seeded, and scalable."""

import numpy as np
import pytest

from threephase import pairs as pairs_module
from threephase.errors import ThreePhaseError
from threephase.pairs import build_pairs, num_pairs_for, pair_statistics

LABELS = [0] * 30 + [1] * 12 + [2] * 5


def test_exact_count_no_self_pairs_and_unordered_uniqueness():
    pairs = build_pairs(LABELS, 500, seed=1)
    assert len(pairs) == 500
    assert all(i != j for i, j, _ in pairs)
    assert len({frozenset((i, j)) for i, j, _ in pairs}) == 500


def test_scores_match_the_labels():
    pairs = build_pairs(LABELS, 300, seed=2)
    assert all(score == (1.0 if LABELS[i] == LABELS[j] else 0.0) for i, j, score in pairs)
    assert {score for _, _, score in pairs} == {0.0, 1.0}


def test_hierarchical_scores_count_matching_leading_levels():
    labels = [("world", "europe"), ("world", "asia"), ("sport", "europe"), ("world", "europe"), ("sport", "golf")]
    pairs = build_pairs(labels, 10, seed=0)  # every pair of the five
    expected = {0: 0.0, 1: 0.5, 2: 1.0}
    for i, j, score in pairs:
        same = 0 if labels[i][0] != labels[j][0] else (2 if labels[i] == labels[j] else 1)
        assert score == expected[same]
    assert {score for _, _, score in pairs} == {0.0, 0.5, 1.0}


def test_groups_keep_copies_away_from_their_original():
    groups = [i % 10 for i in range(40)]
    pairs = build_pairs([i % 3 for i in range(40)], 600, seed=3, groups=groups)
    assert all(groups[i] != groups[j] for i, j, _ in pairs)


def test_same_seed_same_pairs_different_seed_different_pairs():
    assert build_pairs(LABELS, 200, seed=4) == build_pairs(LABELS, 200, seed=4)
    assert build_pairs(LABELS, 200, seed=4) != build_pairs(LABELS, 200, seed=5)


def test_pairs_come_from_two_shuffled_copies_in_position_order(monkeypatch):
    monkeypatch.setattr(pairs_module, "_CANDIDATES_PER_BATCH", 1)  # one round per numpy call
    rng = np.random.default_rng(11)
    indexes = np.arange(len(LABELS))[None, :]
    first, second = rng.permuted(indexes, axis=1)[0], rng.permuted(indexes, axis=1)[0]
    expected, seen = [], set()
    for i, j in zip(first.tolist(), second.tolist()):
        if i != j and frozenset((i, j)) not in seen:
            seen.add(frozenset((i, j)))
            expected.append((i, j))
    assert [(i, j) for i, j, _ in build_pairs(LABELS, len(expected), seed=11)] == expected


def test_a_shorter_request_is_a_prefix_of_a_longer_one():
    assert build_pairs(LABELS, 400, seed=6)[:150] == build_pairs(LABELS, 150, seed=6)


@pytest.mark.parametrize("candidates_per_batch", [1, 1 << 16])
def test_asking_for_every_pair_gets_them_all(monkeypatch, candidates_per_batch):
    # One round per batch makes later rounds find pairs that earlier ones took.
    monkeypatch.setattr(pairs_module, "_CANDIDATES_PER_BATCH", candidates_per_batch)
    pairs = build_pairs(LABELS, 47 * 46 // 2, seed=7)
    assert len({frozenset((i, j)) for i, j, _ in pairs}) == 47 * 46 // 2


def test_too_many_pairs_names_the_maximum():
    with pytest.raises(ThreePhaseError, match="exceeds the 1081 distinct"):
        build_pairs(LABELS, 1082)
    with pytest.raises(ThreePhaseError, match="at most 6"):
        build_pairs([0, 1, 0, 1], 7)
    with pytest.raises(ThreePhaseError, match="at most 4"):  # two groups of two take 2 of the 6 pairs away
        build_pairs([0, 1, 0, 1], 5, groups=[0, 0, 1, 1])


def test_bad_requests_raise():
    with pytest.raises(ThreePhaseError, match="at least 2 examples"):
        build_pairs([0], 1)
    with pytest.raises(ThreePhaseError, match=r"num_pairs \(0\)"):
        build_pairs(LABELS, 0)
    with pytest.raises(ThreePhaseError, match="groups has 2 items"):
        build_pairs(LABELS, 5, groups=[0, 1])
    with pytest.raises(ThreePhaseError, match="all tuples with one number of levels"):
        build_pairs([("a", "b"), "a"], 1)
    with pytest.raises(ThreePhaseError, match="all tuples with one number of levels"):
        build_pairs([("a", "b"), ("a",)], 1)
    with pytest.raises(ThreePhaseError, match="not hashable"):
        build_pairs([[0, 1], [1, 0]], 1)


@pytest.mark.parametrize("num_pairs", [300, 301])
def test_balance_scores_gives_equal_positives_and_negatives(num_pairs):
    labels = [i % 4 for i in range(40)]  # 180 positive and 600 negative pairs
    unbalanced = pair_statistics(build_pairs(labels, num_pairs, seed=8))
    assert unbalanced["positives"] < unbalanced["negatives"] - 50
    stats = pair_statistics(build_pairs(labels, num_pairs, seed=8, balance_scores=True))
    assert stats["count"] == num_pairs
    assert abs(stats["positives"] - stats["negatives"]) == num_pairs % 2


def test_balance_scores_keeps_partial_scores():
    labels = [(i % 2, i % 4) for i in range(40)]
    stats = pair_statistics(build_pairs(labels, 300, seed=9, balance_scores=True))
    assert stats["count"] == 300
    assert stats["partial"] > 0
    assert abs(stats["positives"] - stats["negatives"]) <= 1


def test_balance_scores_rejects_an_unbalanceable_request():
    # 1 positive pair and 9 negatives: at most 1 + 1 balanced pairs, plus one negative for an odd total.
    with pytest.raises(ThreePhaseError, match="at most 3"):
        build_pairs([0, 0, 1, 2, 3], 4, balance_scores=True)
    assert len(build_pairs([0, 0, 1, 2, 3], 3, balance_scores=True)) == 3


def test_a_large_request_finishes():
    labels = np.random.default_rng(0).integers(0, 4, 50_000)
    pairs = np.array(build_pairs(labels, 200_000, seed=10))
    assert len(pairs) == 200_000
    first, second = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    assert np.unique(np.minimum(first, second) * 50_000 + np.maximum(first, second)).size == 200_000


def test_pair_statistics():
    stats = pair_statistics([(0, 1, 1.0), (0, 2, 0.0), (1, 2, 0.5), (2, 3, 1.0)])
    assert stats == {"count": 4, "positives": 2, "negatives": 1, "partial": 1, "positive_fraction": 0.5}
    assert pair_statistics([])["count"] == 0


@pytest.mark.parametrize(
    ("examples", "classes", "multiplier", "expected"),
    [(100, 2, 1.0, 100), (100, 4, 1.0, 200), (100, 7, 0.5, 100), (100, 8, 2.0, 600), (1, 1, 0.1, 1)],
)
def test_num_pairs_for(examples, classes, multiplier, expected):
    assert num_pairs_for(examples, classes, multiplier) == expected


def test_available_pairs_counts_what_build_pairs_can_draw():
    from threephase.pairs import available_pairs

    assert available_pairs([0, 0, 1, 1]) == 6
    assert available_pairs([0, 0, 1, 1], groups=[0, 0, 1, 2]) == 5  # 0 and 1 share a source
    assert len(build_pairs([0, 0, 1, 1], 6, seed=0)) == 6
    with pytest.raises(ThreePhaseError):
        build_pairs([0, 0, 1, 1], 6, seed=0, groups=[0, 0, 1, 2])


def test_pair_dataset_caps_requests_on_tiny_data(caplog):
    from threephase.config import CLConfig, ImbalanceConfig
    from threephase.phases import pair_dataset

    texts = [f"text number {i} with some words" for i in range(12)]
    labels = [i % 3 for i in range(12)]
    dataset, info = pair_dataset(texts, labels, ImbalanceConfig(), CLConfig(pair_multiplier=100), seed=0)
    assert info["num_pairs"] == len(dataset) == 66 // 2
    assert "distinct pairs exist" in caplog.text
    assert set(dataset["score"]) == {0.0, 1.0}


def test_joint_rows_draw_fresh_noise_instead_of_repeating_it():
    from threephase import CLConfig, DAEConfig
    from threephase.phases import joint_dataset

    texts = [f"sentence number {i} has quite a few words in it for the noise to delete" for i in range(12)]
    labels = [i % 3 for i in range(12)]
    dataset, info = joint_dataset(texts, labels, DAEConfig(num_train_epochs=1, deletion_ratio=0.6),
                                  CLConfig(pair_multiplier=4), None, seed=0)
    assert info["num_pairs"] > len(texts)  # more pairs than texts: the DAE side needs more rows
    assert len(dataset) == info["examples"] and info["num_pairs"] <= len(dataset) < info["num_pairs"] + len(texts)
    noisy_copies = list(zip(dataset["noisy"], dataset["text"]))
    assert len(set(noisy_copies)) > len(texts), "the DAE rows repeat the same noisy copies"
    assert set(dataset["text"]) == set(texts)
