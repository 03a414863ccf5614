"""Word-deletion noise: the DAE deletion ratio and the stop-word noise on resized copies."""

import random

import pytest

from threephase.errors import ThreePhaseError
from threephase.noise import ENGLISH_STOP_WORDS, delete_stop_words, delete_words

TWENTY_WORDS = " ".join(f"w{i}" for i in range(20))


def is_subsequence(part: list[str], whole: list[str]) -> bool:
    remaining = iter(whole)
    return all(word in remaining for word in part)


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.6, 0.9])
def test_mean_fraction_deleted_matches_the_deletion_ratio(ratio):
    rng = random.Random(0)
    draws = 2000
    deleted = [1 - len(delete_words(TWENTY_WORDS, ratio, rng).split()) / 20 for _ in range(draws)]
    # The keep-one rule only matters when all 20 words go, which is rare even at 0.9 (0.9**20 ≈ 0.12).
    assert sum(deleted) / draws == pytest.approx(ratio, abs=0.02)


def test_ratio_zero_keeps_every_word():
    assert delete_words("one  two\tthree", 0.0, random.Random(0)) == "one two three"


def test_never_empty_and_order_kept():
    rng = random.Random(1)
    words = TWENTY_WORDS.split()
    for _ in range(500):
        noisy = delete_words(TWENTY_WORDS, 0.95, rng).split()
        assert noisy
        assert is_subsequence(noisy, words)


def test_text_without_words_is_returned_unchanged():
    assert delete_words("", 0.5, random.Random(0)) == ""


def test_same_seed_same_noise():
    first = [delete_words(TWENTY_WORDS, 0.6, random.Random(7)) for _ in range(3)]
    assert len(set(first)) == 1
    rng = random.Random(7)
    assert {delete_words(TWENTY_WORDS, 0.6, rng) for _ in range(5)} != {first[0]}


@pytest.mark.parametrize("ratio", [1.0, -0.1])
def test_bad_ratio_raises(ratio):
    with pytest.raises(ThreePhaseError, match=str(ratio)):
        delete_words(TWENTY_WORDS, ratio, random.Random(0))


def test_stop_word_list_is_scikit_learns():
    assert {"the", "and", "of"} <= ENGLISH_STOP_WORDS
    assert "cat" not in ENGLISH_STOP_WORDS


def test_stop_word_deletion_removes_only_stop_words_and_at_least_one():
    text = "The cat sat on the mat, and it was happy."
    words = text.split()
    rng = random.Random(3)
    for _ in range(200):
        noisy = delete_stop_words(text, rng).split()
        removed = list(words)
        for word in noisy:
            removed.remove(word)
        assert removed
        assert all(word.strip(",.").lower() in ENGLISH_STOP_WORDS for word in removed)
        assert is_subsequence(noisy, words)


def test_stop_word_deletion_leaves_short_or_stop_word_free_texts_alone():
    rng = random.Random(0)
    assert delete_stop_words("the cat sat", rng) == "the cat sat"
    assert delete_stop_words("green  cats chase  mice", rng) == "green  cats chase  mice"


def test_stop_word_deletion_never_removes_every_word():
    rng = random.Random(0)
    for _ in range(100):
        assert delete_stop_words("the of and it was", rng, ratio=1.0).split()


def test_stop_word_deletion_checks_its_arguments():
    with pytest.raises(ThreePhaseError, match="1.5"):
        delete_stop_words("the cat is on the mat", random.Random(0), ratio=1.5)
    with pytest.raises(ThreePhaseError, match="min_words"):
        delete_stop_words("the cat is on the mat", random.Random(0), min_words=1)
