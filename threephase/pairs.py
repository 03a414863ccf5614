"""Scored example pairs for phase 2 (paper §2.2, eq. 2), drawn without materializing all n² candidates.

Each round shuffles two copies of the index list and pairs them position by position; self-pairs, pairs within a
group and pairs already taken (unordered) are dropped. Scores: 1.0 for equal labels, else 0.0; hierarchical labels
(tuples of levels, coarse first) score the fraction of leading levels that match.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .errors import ThreePhaseError

# Small datasets shuffle many rounds in one numpy call; the stream of candidates depends on the data alone, so a
# shorter request gives a prefix of a longer one (outside balance_scores).
_CANDIDATES_PER_BATCH = 1 << 16
# Rounds in a row without a new pair before giving up: the admissible pairs left are too rare to find.
_MAX_IDLE_ROUNDS = 1000


def _level_codes(labels: Sequence) -> np.ndarray:
    """Integer codes of each label prefix, shape (levels, n): row l codes the first l + 1 levels."""
    depths = {len(label) if isinstance(label, tuple) else None for label in labels}
    if len(depths) > 1 or 0 in depths:
        raise ThreePhaseError("Labels must be all plain values or all tuples with one number of levels (at least "
                              "one): make them uniform.")
    depth = depths.pop()
    rows = [labels] if depth is None else [[label[: level + 1] for label in labels] for level in range(depth)]
    codes = np.empty((len(rows), len(labels)), dtype=np.int64)
    for level, row in enumerate(rows):
        ids: dict = {}
        try:
            codes[level] = [ids.setdefault(value, len(ids)) for value in row]
        except TypeError as error:
            raise ThreePhaseError(f"A label is not hashable ({error}): pass strings, numbers or tuples.") from None
    return codes


def _equal_pairs(keys: np.ndarray, groups: np.ndarray | None) -> int:
    """Number of admissible unordered pairs (i != j, different groups) whose ``keys`` are equal."""
    def same(codes: np.ndarray) -> int:  # Python ints, which cannot overflow
        return sum(count * (count - 1) // 2 for count in np.unique(codes, return_counts=True)[1].tolist())
    return same(keys) - (0 if groups is None else same(keys * (int(groups.max()) + 1) + groups))


def _available(codes: np.ndarray, groups: np.ndarray | None, balance: bool) -> int:
    n = codes.shape[1]
    total = _equal_pairs(np.zeros(n, dtype=np.int64), groups)
    if not balance:
        return total
    positives = _equal_pairs(codes[-1], groups)
    negatives = total - _equal_pairs(codes[0], groups)
    return total - positives - negatives + 2 * min(positives, negatives) + (positives != negatives)


def available_pairs(labels: Sequence, groups: Sequence[int] | None = None, balance_scores: bool = False) -> int:
    """How many distinct pairs :func:`build_pairs` can draw from ``labels`` (and ``groups``) at most."""
    return _available(_level_codes(labels), None if groups is None else np.asarray(groups, dtype=np.int64),
                      balance_scores)


def _check_available(codes: np.ndarray, groups: np.ndarray | None, num_pairs: int, balance: bool) -> None:
    """Raise when fewer than ``num_pairs`` distinct admissible (and, with ``balance``, balanced) pairs exist."""
    available = _available(codes, groups, balance)
    what = "balanced pairs (partial scores plus equal numbers of positives and negatives)" if balance \
        else "distinct admissible pairs"
    if num_pairs > available:
        raise ThreePhaseError(
            f"num_pairs ({num_pairs}) exceeds the {available} {what} of these {codes.shape[1]} examples: "
            f"lower num_pairs (or the pair multiplier) to at most {available}."
        )


def _fresh_pairs(n: int, groups: np.ndarray | None, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless batches of admissible pairs not seen before, shape (2, m), in the order they were drawn."""
    rounds = max(1, -(-_CANDIDATES_PER_BATCH // n))
    indexes = np.tile(np.arange(n, dtype=np.int64), (rounds, 1))
    # Sorted keys min * n + max of the pairs found; the sentinel above every key keeps lookups in range.
    taken = np.array([np.iinfo(np.int64).max])
    idle_rounds = 0
    while True:
        pairs = np.stack([rng.permuted(indexes, axis=1).ravel(), rng.permuted(indexes, axis=1).ravel()])
        keep = pairs[0] != pairs[1]
        if groups is not None:
            keep &= groups[pairs[0]] != groups[pairs[1]]
        pairs = pairs[:, keep]
        keys = pairs.min(axis=0) * n + pairs.max(axis=0)
        unique_keys, first_seen = np.unique(keys, return_index=True)
        fresh = taken[np.searchsorted(taken, unique_keys)] != unique_keys
        idle_rounds = 0 if fresh.any() else idle_rounds + rounds
        if idle_rounds >= _MAX_IDLE_ROUNDS:
            raise ThreePhaseError(
                f"No new pair turned up in {idle_rounds} rounds: the pairs left are too rare to draw, lower num_pairs."
            )
        # A stable sort of two sorted runs is a linear merge.
        taken = np.sort(np.concatenate([taken, unique_keys[fresh]]), kind="stable")
        yield pairs[:, np.sort(first_seen[fresh])]


def _stop_index(kinds: np.ndarray, before: np.ndarray, num_pairs: int, balance: bool) -> int | None:
    """Length of the prefix of ``kinds`` that completes the request, if any, after ``before`` pairs of each kind."""
    counts = before[:, None] + np.cumsum(kinds[None, :] == np.arange(3)[:, None], axis=1)
    if balance:
        # The majority is undersampled: deliverable = partials + twice the minority (+ one of the majority).
        negatives, partials, positives = counts
        deliverable = partials + 2 * np.minimum(negatives, positives) + (negatives != positives)
    else:
        deliverable = counts.sum(axis=0)
    reached = np.flatnonzero(deliverable >= num_pairs)
    return int(reached[0]) + 1 if reached.size else None


def _undersample(kinds: np.ndarray, num_pairs: int) -> np.ndarray:
    """Mask keeping every partial pair and the first positives and negatives, equally many (one more if odd)."""
    keep = kinds == 1
    quota = min(int((kinds == 0).sum()), int((kinds == 2).sum()))
    # 0 or 1, and only the majority has a pair beyond the quota to fill it with.
    extra = num_pairs - int(keep.sum()) - 2 * quota
    for kind in (0, 2):
        is_kind = kinds == kind
        keep |= is_kind & (np.cumsum(is_kind) <= quota + extra)
    return keep


def build_pairs(labels: Sequence, num_pairs: int, seed: int = 0, *, groups: Sequence[int] | None = None,
                balance_scores: bool = False) -> list[tuple[int, int, float]]:
    """Draw ``num_pairs`` distinct scored pairs of example indexes.

    Args:
        labels: The label of each example: hashable values, or tuples of levels (coarse first) when hierarchical.
        num_pairs: How many pairs to return.
        seed: Seed of the numpy generator; the same seed gives the same pairs.
        groups: Optional group of each example (for resized data, the source example of each row); pairs within a
            group are dropped, so that a copy never pairs with its original.
        balance_scores: Undersample the majority of positive (score 1) and negative (score 0) pairs, as the
            authors' code does: both are taken in drawn order up to equal counts (they differ by at most one),
            while partial scores are all kept. This moves the share of positives from about the sum of squared
            class proportions to one half, and needs more draws when one kind is rare.

    Returns:
        ``(i, j, score)`` tuples in the order they were found, each unordered pair at most once.

    Raises:
        ThreePhaseError: If there are fewer than 2 examples, ``num_pairs`` < 1, ``groups`` has the wrong length,
            ``num_pairs`` exceeds the admissible pairs (the message gives the maximum), or the drawing stalls.
    """
    n = len(labels)
    if n < 2:
        raise ThreePhaseError(f"Pairs need at least 2 examples, got {n}: pass more labels.")
    if num_pairs < 1:
        raise ThreePhaseError(f"num_pairs ({num_pairs}) is below 1: ask for at least one pair.")
    codes = _level_codes(labels)
    levels = codes.shape[0]
    group_codes = None
    if groups is not None:
        if len(groups) != n:
            raise ThreePhaseError(f"groups has {len(groups)} items but labels has {n}: pass one group per label.")
        group_codes = np.unique(np.asarray(groups), return_inverse=True)[1].ravel().astype(np.int64)
    _check_available(codes, group_codes, num_pairs, balance_scores)

    found: list[np.ndarray] = []
    counts = np.zeros(3, dtype=np.int64)  # negatives, partials, positives found so far
    for batch in _fresh_pairs(n, group_codes, np.random.default_rng(seed)):
        matches = (codes[:, batch[0]] == codes[:, batch[1]]).sum(axis=0, dtype=np.int64)
        # 0: negative (no level matches), 1: partial, 2: positive (every level matches).
        kinds = np.where(matches == levels, 2, np.minimum(matches, 1))
        stop = _stop_index(kinds, counts, num_pairs, balance_scores)
        found.append(np.vstack([batch, matches, kinds])[:, :stop])  # stop is None: the whole batch
        if stop is not None:
            break
        counts += np.bincount(kinds, minlength=3)
    table = np.concatenate(found, axis=1)
    found.clear()  # frees the per-batch arrays before the list of pairs is built
    if balance_scores:
        table = table[:, _undersample(table[3], num_pairs)]

    # Shared int and float objects and a chunked conversion: a million pairs take ~70 MB rather than twice that.
    indexes, scores = list(range(n)), [level / levels for level in range(levels + 1)]
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, table.shape[1], _CANDIDATES_PER_BATCH):
        first, second, matches, _ = table[:, start: start + _CANDIDATES_PER_BATCH].tolist()
        pairs += zip(map(indexes.__getitem__, first), map(indexes.__getitem__, second), map(scores.__getitem__, matches))
    return pairs


def pair_statistics(pairs: Sequence[tuple[int, int, float]]) -> dict[str, int | float]:
    """Summarize a pair list: ``count``, ``positives`` (score 1), ``negatives`` (score 0), ``partial`` (in between)
    and ``positive_fraction`` (0.0 for an empty list)."""
    count = len(pairs)
    positives = sum(1 for _, _, score in pairs if score == 1.0)
    negatives = sum(1 for _, _, score in pairs if score == 0.0)
    return {"count": count, "positives": positives, "negatives": negatives,
            "partial": count - positives - negatives, "positive_fraction": positives / count if count else 0.0}


def num_pairs_for(num_examples: int, num_classes: int, multiplier: float) -> int:
    """The number of phase-2 pairs: ``int(multiplier * max(1, floor(log2 K)) * num_examples)``, at least 1."""
    if num_examples < 1 or num_classes < 1 or multiplier <= 0:
        raise ThreePhaseError(f"num_pairs_for got num_examples={num_examples}, num_classes={num_classes}, "
                              f"multiplier={multiplier}: pass counts >= 1 and a multiplier > 0.")
    return max(1, int(multiplier * max(1, int(num_classes).bit_length() - 1) * num_examples))
