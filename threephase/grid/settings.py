"""The settings of the "When do the phases help?" experiment (:data:`SETTINGS`): what each one asks, the overrides
it trains with atop the ``cpu`` preset, its variants and its datasets. :mod:`threephase.grid.experiment` plans and
runs them; :mod:`threephase.grid.report` titles its tables with them.

* ``long-tail``: a long-tailed training split (largest / smallest class ≈ 10) of 80 examples, so that the resize
  (eq. 4-5) acts; ``no-imb`` is the same variant without the resize, ``extra-imb`` with a larger one (snips2, the
  dataset with the most classes; ``--datasets ag_news,snips2`` adds a second).
* ``long-tail-many-pairs`` and ``long-tail-few-pairs``: the same split, every resize variant on one pair count
  (``cl.num_pairs``: ``extra-imb``'s, then ``no-imb``'s), so that the resize is compared at equal steps.
* ``few-shot``: 8 labelled examples per class, balanced (sst2, snips2).
* ``unlabelled``: the same labels, and phase 1 (and Joint's DAE part) also reads 256 unlabelled training texts,
  once each (sst2).

On balanced classes the resize leaves every class as it is, so ``extra-imb`` and ``no-imb`` train exactly what
``three-phase`` trains (tested): they run in the long-tail settings only. In ``unlabelled`` only the variants with a
phase 1 change; ``ft`` and ``logreg`` run there again as its paired reference. ``setfit`` joins ``few-shot``, the
setting SetFit was made for, when its extra is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DATASETS = ("sst2", "ag_news", "snips2")
WITH_PHASE1 = ("three-phase", "joint", "dae-ft")
BALANCED = ("three-phase", "joint", "dae-ft", "cl-ft", "ft", "logreg")
# Every variant but setfit (few-shot's), in the tables' order.
LONG_TAIL_VARIANTS = ("three-phase", "joint", "dae-ft", "cl-ft", "extra-imb", "no-imb", "ft", "logreg")


@dataclass(frozen=True)
class Setting:
    """One setting: its title, the overrides it trains with, its variants, its question and its datasets."""

    title: str
    overrides: dict[str, Any]
    variants: tuple[str, ...]
    question: str = ""
    datasets: tuple[str, ...] = DATASETS  # where the setting's question can be asked within the CPU budget
    # Every variant of the setting trains on as many pairs as this variant draws (cl.num_pairs), so that variants
    # that resize differently compare at equal steps.
    equal_pairs: str | None = None


RESIZES = ("three-phase", "extra-imb", "no-imb", "ft")  # the resize's three strengths, and the reference
# Few-shot selection reads as many labelled examples as training (8 per class): every method, the baselines too
# (they choose their regression's C there), trains on the same labels and selects on the same labels.
FEW_SHOT = {"data.train_per_class": 8, "data.validation_per_class": 8}
LONG_TAIL = {"data.imbalance_factor": 10, "data.max_train_samples": 80, "data.min_per_class": 4,
             # Five batches: half the repetitions give about the steps of few-shot snips2 (56 examples).
             "dae.num_train_epochs": 2, "cl.pair_multiplier": 2}

#: The settings by name, in the order the experiment runs them and its tables list them.
SETTINGS: dict[str, Setting] = {
    "few-shot": Setting("balanced few-shot (8 per class)", FEW_SHOT, BALANCED + ("setfit",),
                        "Do phases 1 and 2 help when labels are few and the classes balanced?", ("sst2", "snips2")),
    "unlabelled": Setting(
        "few-shot + 256 unlabelled texts for phase 1",
        # One pass over 16 + 256 texts gives phase 1 about four times the steps of few-shot's four passes over 16.
        {**FEW_SHOT, "data.unlabelled": "train", "data.max_unlabelled_samples": 256, "dae.num_train_epochs": 1},
        WITH_PHASE1 + ("ft", "logreg"), "Does phase 1 gain from in-domain texts without labels?", ("sst2",)),
    "long-tail": Setting(
        "long-tailed (ρ = 10, 80 examples)", LONG_TAIL, LONG_TAIL_VARIANTS,
        "Do phases 1 and 2 help on imbalanced classes, and does the resize (three-phase vs no-imb vs extra-imb)?",
        ("snips2",)),
    "long-tail-many-pairs": Setting(
        "long-tailed, every resize at extra-imb's pair count", LONG_TAIL, RESIZES,
        "Does the resize help when no-imb and three-phase train as many steps as extra-imb?", ("snips2",),
        equal_pairs="extra-imb"),
    "long-tail-few-pairs": Setting(
        "long-tailed, every resize at no-imb's pair count", LONG_TAIL, RESIZES,
        "Does the resize help when extra-imb and three-phase train as few steps as no-imb?", ("snips2",),
        equal_pairs="no-imb"),
}
