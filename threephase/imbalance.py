"""The imbalance correction before phase 2 (paper §2.2.1, eq. 4-6): small classes get extra copies.

For class sizes ``n_k`` with ``M = max_k n_k``, the resize ratio of a class is::

    f(x) = ln(M / x) * max_ratio / ln(M),      ratio_k = f(n_k) if f(n_k) >= min_ratio else 1,

and its new size is ``round(ratio_k * n_k)``. ``f(1) = max_ratio``, ``f(M) = 0`` and ``f = 1`` at
:func:`crossing_point`. With the default ratios only really skewed data are touched.
"""

from __future__ import annotations

import math
import numbers
import random
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ThreePhaseError
from .noise import delete_stop_words


def _check_ratios(min_ratio: float, max_ratio: float) -> None:
    if min_ratio <= 0 or max_ratio <= 0:
        raise ThreePhaseError(
            f"Resize ratios must be positive, got min_ratio={min_ratio}, max_ratio={max_ratio}: "
            "pass values > 0 (defaults 1.5 and 4)."
        )
    if min_ratio > max_ratio:
        raise ThreePhaseError(
            f"min_ratio ({min_ratio}) is larger than max_ratio ({max_ratio}): pass min_ratio <= max_ratio."
        )


def resize_curve(x: float | np.ndarray, largest: float, max_ratio: float = 4.0) -> float | np.ndarray:
    """The resize function ``f(x) = ln(largest / x) * max_ratio / ln(largest)`` (eq. 4), vectorised over ``x``.

    Raises:
        ThreePhaseError: If ``largest`` is not above 1 (``f`` is undefined there; every ratio is 1).
    """
    if largest <= 1:
        raise ThreePhaseError(f"largest ({largest}) must be above 1 for the resize curve: pass the largest class size.")
    return np.log(largest / np.asarray(x, dtype=float)) * max_ratio / math.log(largest)


def crossing_point(max_ratio: float, largest: float) -> float:
    """The class size where the resize curve equals 1: ``largest ** ((max_ratio - 1) / max_ratio)``."""
    if max_ratio <= 0:
        raise ThreePhaseError(f"max_ratio ({max_ratio}) must be positive: pass a value > 0 (default 4).")
    return largest ** ((max_ratio - 1) / max_ratio)


def resize_ratios(class_sizes: Mapping[Hashable, int], min_ratio: float = 1.5, max_ratio: float = 4.0,
                  whole_copies: bool = False) -> dict[Hashable, float]:
    """The resize ratio of each class (eq. 5).

    Args:
        class_sizes: Number of examples of each class.
        min_ratio: Classes whose ``f(x)`` is below this are left as they are (ratio 1).
        max_ratio: The ratio a class of one example would get.
        whole_copies: Round ``f(x)`` to a whole number of copies, as the authors' code does, instead of the
            paper's fractional ratio.

    Returns:
        The ratio of each class, in the order of ``class_sizes``; all 1 when the largest class has at most one
        example.

    Raises:
        ThreePhaseError: If ``class_sizes`` is empty, a size is not an integer >= 1, or the ratios are not
            positive with ``min_ratio <= max_ratio``.
    """
    if not class_sizes:
        raise ThreePhaseError("class_sizes is empty: pass the number of examples of each class.")
    for label, size in class_sizes.items():
        if not isinstance(size, numbers.Integral) or size < 1:
            raise ThreePhaseError(
                f"Class {label!r} has size {size!r}: pass whole numbers >= 1 (drop classes without examples)."
            )
    _check_ratios(min_ratio, max_ratio)
    largest = max(class_sizes.values())
    if largest <= 1:
        return {label: 1.0 for label in class_sizes}
    ratios = {}
    for label, size in class_sizes.items():
        f = float(resize_curve(size, largest, max_ratio))
        ratios[label] = (float(round(f)) if whole_copies else f) if f >= min_ratio else 1.0
    return ratios


def resized_sizes(class_sizes: Mapping[Hashable, int], min_ratio: float = 1.5, max_ratio: float = 4.0,
                  whole_copies: bool = False) -> dict[Hashable, int]:
    """The class sizes after resizing, ``round(ratio * size)`` (eq. 6); arguments as :func:`resize_ratios`."""
    ratios = resize_ratios(class_sizes, min_ratio, max_ratio, whole_copies)
    return {label: round(ratios[label] * size) for label, size in class_sizes.items()}


@dataclass(frozen=True)
class ResizedData:
    """A resized dataset: the originals first, in input order, then the extra copies.

    Attributes:
        texts: The texts, extra copies possibly with some stop-words deleted.
        labels: The label of each row.
        source: For each row, the index in the input of the example it came from.
        sizes_before: Class sizes of the input, in order of first appearance.
        sizes_after: Class sizes of the output.
    """

    texts: list[str]
    labels: list
    source: list[int]
    sizes_before: dict
    sizes_after: dict


def resize_dataset(
    texts: Sequence[str],
    labels: Sequence,
    *,
    min_ratio: float = 1.5,
    max_ratio: float = 4.0,
    seed: int = 0,
    whole_copies: bool = False,
    stop_word_noise: bool = True,
) -> ResizedData:
    """Add extra copies of the small classes' examples, as many as :func:`resized_sizes` asks for.

    A class's extra copies go through its examples in a seeded random order, each once before any is used again.
    With ``stop_word_noise`` each copy loses some stop-words (:func:`~threephase.noise.delete_stop_words`), so
    that repeated examples are close but not identical. The same seed gives the same output.

    Args:
        texts: The texts of the dataset.
        labels: One hashable label per text.
        min_ratio, max_ratio, whole_copies: As in :func:`resize_ratios`.
        seed: Seed of the copy order and of the stop-word noise.
        stop_word_noise: Delete some stop-words from each extra copy.

    Returns:
        The originals in input order, then the extra copies, with each row's source index and the class sizes.

    Raises:
        ThreePhaseError: If ``texts`` and ``labels`` differ in length, plus the errors of :func:`resize_ratios`.
    """
    if len(texts) != len(labels):
        raise ThreePhaseError(
            f"texts has {len(texts)} items but labels has {len(labels)}: pass one label per text."
        )
    sizes_before = dict(Counter(labels))
    sizes_after = resized_sizes(sizes_before, min_ratio, max_ratio, whole_copies)
    members: dict[Hashable, list[int]] = {label: [] for label in sizes_before}
    for index, label in enumerate(labels):
        members[label].append(index)

    rng = random.Random(seed)
    source = list(range(len(texts)))
    for label, indexes in members.items():
        missing = sizes_after[label] - len(indexes)
        while missing > 0:
            permutation = indexes.copy()
            rng.shuffle(permutation)
            source.extend(permutation[:missing])
            missing -= len(permutation)

    # The noise is drawn after every copy is chosen, so turning it off does not change which examples are copied.
    out_texts = list(texts)
    for index in source[len(texts):]:
        text = texts[index]
        out_texts.append(delete_stop_words(text, rng) if stop_word_noise else text)
    return ResizedData(
        texts=out_texts,
        labels=[labels[index] for index in source],
        source=source,
        sizes_before=sizes_before,
        sizes_after=sizes_after,
    )
