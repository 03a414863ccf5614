"""Drawing subsets of a split: stratified caps that keep the class proportions, and a long-tail reshaping.

Both work on a pandas frame with columns ``text`` and ``label`` (label ids), and are seeded by the data seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split


def subsample(frame: pd.DataFrame, per_class: int | None = None, total: int | None = None, seed: int = 42,
              min_per_class: int = 0) -> pd.DataFrame:
    """A stratified, seeded subset: at most ``per_class`` rows of each class, then at most ``total`` rows.

    ``per_class`` evens the classes out (the few-shot setting); ``total`` keeps their proportions. After a ``total``
    draw, a class left with fewer than ``min_per_class`` rows gets rows back up to that floor (or all it has), so
    that every class can still be paired in phase 2."""
    if per_class is not None:
        frame = pd.concat(
            group.sample(n=min(per_class, len(group)), random_state=seed)
            for _, group in frame.groupby("label", sort=True)
        )
    if total is not None and total < len(frame):
        frame = frame.reset_index(drop=True)
        counts = frame["label"].value_counts()
        if len(frame) - total < len(counts):
            # Too few rows left out for scikit-learn to stratify them (it needs one per class on each side): leave
            # out one row of each of the largest classes, which is what a proportional draw would do.
            largest = counts.sort_values(ascending=False, kind="stable").index[:len(frame) - total]
            left_out = [frame[frame["label"] == label].sample(n=1, random_state=seed).index[0] for label in largest]
            drawn, rest = frame.drop(index=left_out), frame.loc[left_out]
        else:
            stratify = frame["label"] if counts.min() >= 2 and total >= len(counts) else None
            drawn, rest = train_test_split(frame, train_size=total, stratify=stratify, random_state=seed)
        topped = [drawn]
        for label, group in rest.groupby("label", sort=True):
            missing = min_per_class - int((drawn["label"] == label).sum())
            if missing > 0:
                topped.append(group.sample(n=min(missing, len(group)), random_state=seed))
        frame = pd.concat(topped)
    return frame.reset_index(drop=True)


def tail_sizes(classes: int, factor: float, smallest: int) -> list[int]:
    """The sizes of a geometric long tail of ``classes`` classes, largest first: the smallest has ``smallest`` rows
    and class j of K (from the smallest up) ``smallest · factor^(j/(K−1))``, rounded; so the largest / smallest ratio
    is ``factor`` exactly wherever ``smallest · factor`` is whole."""
    return [round(smallest * factor ** ((classes - 1 - k) / max(classes - 1, 1))) for k in range(classes)]


def long_tail(frame: pd.DataFrame, factor: float, seed: int = 42, total: int | None = None) -> pd.DataFrame:
    """Reshape the classes into a long tail whose sizes fall geometrically from largest to smallest by ``factor``.

    Which class gets which size is a seeded permutation of the classes (``seed``, the data seed), so that each data
    draw makes other classes rare: a fixed order would always put the same classes in the tail. The sizes are
    :func:`tail_sizes`: without ``total`` the largest class has the smallest class's size in ``frame`` (every class
    can give its share); with ``total`` the smallest has ``max(2, round(total / Σ factor^(j/(K−1))))`` rows, so that
    the split has about ``total`` rows and the ratio stays ``factor`` (at least 2 rows per class: one positive pair)."""
    labels = sorted(frame["label"].unique())
    order = [labels[i] for i in np.random.default_rng(seed).permutation(len(labels))]
    steps = [factor ** (j / max(len(labels) - 1, 1)) for j in range(len(labels))]
    if total is None:
        smallest = max(2, round(int(frame["label"].value_counts().min()) / factor))
    else:
        smallest = max(2, round(total / sum(steps)))
    sizes = tail_sizes(len(labels), factor, smallest)
    keep = [frame[frame["label"] == label].sample(n=min(size, int((frame["label"] == label).sum())),
                                                  random_state=seed) for label, size in zip(order, sizes)]
    return pd.concat(keep).reset_index(drop=True)
