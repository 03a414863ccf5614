"""Checks of the data that explain what would otherwise fail late or silently: unreadable files, blank or mixed
labels, splits that cannot end well. They name the problem and the fix. (Settings that contradict each other are
refused by :func:`threephase.config.check_data_settings`, next to the settings themselves.)"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from .errors import ThreePhaseError

logger = logging.getLogger(__name__)


def warn_about_splits(frames: dict[str, pd.DataFrame], names: list[str], benchmark: bool = False) -> None:
    """Say what trains silently but cannot end well: a class that only evaluation sees, a test that repeats train."""
    in_train = set(frames["train"]["label"])
    for split in ("validation", "test"):
        counts = frames[split]["label"].value_counts()
        unseen = {names[label]: int(count) for label, count in counts.items() if label not in in_train}
        if unseen:
            logger.warning(
                "The %s split holds %s, which the train split lacks: the classifier can never predict %s. Add "
                "training examples of %s, or drop %s from %s.", split,
                ", ".join(f"{count} example(s) of {name!r}" for name, count in unseen.items()),
                "it" if len(unseen) == 1 else "them", "it" if len(unseen) == 1 else "them",
                "it" if len(unseen) == 1 else "them", split)
    training_texts = set(frames["train"]["text"])
    for split in ("test", "validation"):
        repeated = int(frames[split]["text"].isin(training_texts).sum())
        if repeated and benchmark:  # the benchmark's own splits: comparable with published numbers only as they are
            logger.info("%d of the %d %s texts also occur in the train split (the benchmark's own splits, kept as "
                        "they are).", repeated, len(frames[split]), split)
        elif repeated:
            logger.warning(
                "%d of the %d %s texts also occur in the train split, so the %s scores are partly measured on "
                "training data: drop those rows from one of the two splits.", repeated, len(frames[split]), split,
                split)


def bad_encoding_line(path: Path) -> int:
    """The number of the first line of ``path`` that is not UTF-8 (1-based)."""
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 1


def check_label_values(values, where: str) -> None:
    """Refuse blank labels, and text labels among integer ids (one typo would otherwise become a class)."""
    text = [v for v in values if isinstance(v, str)]
    blank = sorted({v for v in text if not v.strip()})
    if blank:
        raise ThreePhaseError(
            f"The label column of {where} holds blank labels ({', '.join(map(repr, blank))}), which would become a "
            "class of their own: fill in those labels, or empty those cells to drop the examples as unlabelled."
        )
    ids = sorted({v for v in values if is_integer(v)}, key=lambda v: int(float(v)))
    words = sorted({str(v) for v in values if not is_integer(v)})
    if ids and words:
        raise ThreePhaseError(
            f"The label column of {where} mixes integer ids ({', '.join(str(v) for v in ids[:5])}) with the text "
            f"label{'s' if len(words) > 1 else ''} {', '.join(map(repr, words[:5]))}: fix "
            f"{'those' if len(words) > 1 else 'that'} label{'s' if len(words) > 1 else ''}, or use text labels "
            "throughout."
        )


def is_integer(value) -> bool:
    try:
        return float(value).is_integer()
    except (TypeError, ValueError):
        return False
