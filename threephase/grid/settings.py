"""The design of the "When do the phases help?" experiment, declared before any run: its settings (:data:`SETTINGS`),
its questions (:data:`QUESTIONS`, one Holm family each), and the equivalence margin (:data:`MARGIN`).
:mod:`threephase.grid.experiment` plans and runs the settings; :mod:`threephase.grid.report` answers the questions.

Every setting runs D data draws (``data.seed`` 0..D−1) × S training seeds, and every method of a setting sees the same
draws and seeds, so that each difference is paired on (draw, seed).

* ``long-tail``: a long-tailed training split of snips2 (largest / smallest class = 10, 86 examples: 30/20/14/9/6/4/3),
  with which classes are rare drawn anew per data draw.
* ``long-tail-equal-pairs``: the same split; three-phase, extra-imb and no-imb all train on three-phase's pair count
  (``cl.num_pairs``), so that the resize is compared at equal steps.
* ``long-tail-tuned``: the long tail, with phase 3 as ``search`` tuned it on validation for each method
  (:data:`TUNED_FT`): is the shared recipe fair to both sides?
* ``few-shot``: balanced labels, as many for selection as for training: 8 per class on snips2, 32 on sst2 (with 8,
  no method learned sst2: phase 3's validation loss stayed at ln 2).
* ``unlabelled``: few-shot sst2's labels, and phase 1 (Joint's DAE part too) also reads 256 unlabelled training
  texts, once each. Only the variants with a phase 1 run: each is compared with itself in ``few-shot``.
* ``full-sst5``: the paper's claim where it was made: the full sst5 training set (8,544 texts; validation and test
  whole), the ``cpu`` preset's phases, one data draw (there is nothing to draw), in bf16.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATASETS = ("sst2", "ag_news", "snips2")
MARGIN = 1.5  # points of accuracy: a difference within ±1.5 is "equivalent" when the TOST says so at α = 0.05
ALPHA = 0.05
POWER = 0.8
# The difference each setting's design should detect at 80% power for Q1's three-phase vs ft (issue #25).
TARGET_MDE = {"long-tail": 2.0, "few-shot": 3.0, "unlabelled": 3.0}
WITH_PHASE1 = ("three-phase", "joint", "dae-ft")
BALANCED = ("three-phase", "joint", "dae-ft", "cl-ft", "ft", "logreg")


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
    # Overrides for one dataset only, after the setting's own (few-shot sst2 needs more labels than snips2).
    per_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Overrides for one variant only, applied last: each method's own tuned phase 3 (long-tail-tuned).
    per_variant: dict[str, dict[str, Any]] = field(default_factory=dict)
    draws: int = 8  # the default D; --draws overrides it up to max_draws
    seeds: int = 3  # the default S; --seeds overrides it
    max_draws: int | None = None  # 1 where nothing is drawn (the full training set)
    size_free: bool = False  # the experiment's sizes (caps, repetitions) do not apply: the setting is its own budget


RESIZES = ("three-phase", "extra-imb", "no-imb")
# Few-shot selection reads as many labelled examples as training: every method, the baselines too (they choose
# their regression's C there), trains on the same labels and selects on the same labels.
# The size's validation cap does not apply: it would cut few-shot snips2's 56 validation examples to 48.
FEW_SHOT = {"data.train_per_class": 8, "data.validation_per_class": 8, "data.max_validation_samples": None}
# With 8 per class no method learned sst2 (phase 3's kept validation loss 0.67 against ln 2 = 0.69). One ft run with
# 32 per class (draw 0, seed 0, this experiment's sizes) kept a validation loss of 0.55 and scored 69.3% on test.
SST2_LABELS = {"data.train_per_class": 32, "data.validation_per_class": 32}
LONG_TAIL = {"data.imbalance_factor": 10, "data.max_train_samples": 86, "data.min_per_class": 4,
             # Five or six batches: half the repetitions give about the steps of few-shot snips2 (56 examples).
             "dae.num_train_epochs": 2, "cl.pair_multiplier": 2}
# Phase 3 as `search` tuned it on validation for each method (10 trials, the long tail's draw 0, seed 0; the studies are
# committed in book/results/phases_help_tuning/, and a test holds these to their best_config.json). Both searches
# found their best in the same trial of the same seeded sampler, so the two methods' settings coincide.
_BEST_TRIAL = {"ft.learning_rate": 0.0004598786090752841, "ft.head_learning_rate": 0.00396567508177101,
               "ft.dropout": 0.23073968112646592, "ft.class_weights": None}
TUNED_FT = {"ft": _BEST_TRIAL, "three-phase": _BEST_TRIAL}
# bf16, not the experiment's fp32 pin: one full-sst5 run is tens of minutes of phase 3 on 2 CPU cores, and bf16 takes
# about 1/1.4 of fp32's time there (benchmarks/results/phases_sst5.json) with accuracy within ±1 point of it
# (precision_check.json). It is pinned, not `auto`, so that every seed computes alike; run it on a GPU or a CPU with
# AMX or AVX512-BF16 (elsewhere torch emulates bf16, many times slower, and says so).
FULL = {"data.max_validation_samples": None, "data.max_test_samples": None, "data.max_train_samples": None,
        "precision": "bf16"}

#: The settings by name, in the order the experiment runs them and its tables list them.
SETTINGS: dict[str, Setting] = {
    "long-tail": Setting(
        "long-tailed (ρ = 10, 86 examples, the rare classes drawn per draw)", LONG_TAIL,
        ("three-phase", "joint", "dae-ft", "cl-ft", "ft", "logreg"),
        # 12 draws were declared first; their variance put the mde of three-phase vs ft at 2.5 points and 18 draws
        # at about 2 (the target), so the design grew to 18 before draws 12-17 ran, whatever they would show.
        "Do phases 1 and 2 help on imbalanced classes?", ("snips2",), draws=18),
    "long-tail-equal-pairs": Setting(
        "long-tailed, every resize at three-phase's pair count", LONG_TAIL, RESIZES,
        "Does the resize help when no-imb and extra-imb train as many steps as three-phase?", ("snips2",),
        equal_pairs="three-phase", draws=12),
    "long-tail-tuned": Setting(
        "long-tailed, phase 3 tuned on validation for each method", LONG_TAIL, ("three-phase", "ft"),
        "With phase 3 tuned for each, do phases 1 and 2 still differ from FT?", ("snips2",), draws=12,
        per_variant=TUNED_FT),
    "few-shot": Setting("balanced few-shot (8 per class on snips2, 32 on sst2)", FEW_SHOT, BALANCED + ("setfit",),
                        "Do phases 1 and 2 help when labels are few and the classes balanced?", ("sst2", "snips2"),
                        per_dataset={"sst2": SST2_LABELS}),
    "unlabelled": Setting(
        "few-shot sst2 + 256 unlabelled texts for phase 1",
        # One pass over 64 + 256 texts gives phase 1 about the steps of few-shot's four passes over 64 (320 texts
        # read against 256), five times as many distinct ones: whether those help is the question.
        {**FEW_SHOT, **SST2_LABELS, "data.unlabelled": "train", "data.max_unlabelled_samples": 256, "dae.num_train_epochs": 1},
        WITH_PHASE1, "Does phase 1 gain from in-domain texts without labels?", ("sst2",)),
    "full-sst5": Setting(
        "the full sst5 training set (8,544 texts), the cpu preset", FULL, ("three-phase", "ft", "joint"),
        "Does the paper's gain (its Table 3) appear on the full training set?", ("sst5",), draws=1, max_draws=1,
        size_free=True),
}


@dataclass(frozen=True)
class Question:
    """One question, one Holm family: ``comparisons`` are (setting, dataset, variant, baseline setting, baseline)."""

    title: str
    comparisons: tuple[tuple[str, str, str, str, str], ...]


def _against(setting: str, dataset: str, variants, baseline: str = "ft", base_setting: str | None = None):
    return tuple((setting, dataset, v, base_setting or setting, baseline) for v in variants)


PHASES = ("three-phase", "joint", "dae-ft", "cl-ft")
#: The questions, declared before the runs. No comparison appears twice, in one family or across them.
QUESTIONS: dict[str, Question] = {
    "Q1": Question("Do phases 1-2 help over FT?",
                   _against("long-tail", "snips2", PHASES) + _against("few-shot", "snips2", PHASES)
                   + _against("few-shot", "sst2", PHASES)),
    "Q2": Question("Does the resize help at equal pairs?",
                   _against("long-tail-equal-pairs", "snips2", ("three-phase", "extra-imb"), "no-imb")),
    "Q3": Question("Where do the baselines stand?",
                   _against("long-tail", "snips2", ("logreg",)) + _against("few-shot", "snips2", ("logreg", "setfit"))
                   + _against("few-shot", "sst2", ("logreg", "setfit"))),
    "Q4": Question("Does phase 1 gain from unlabelled texts?",
                   tuple(("unlabelled", "sst2", v, "few-shot", v) for v in WITH_PHASE1)),
    "Q5": Question("Does the paper's gain appear on full sst5?",
                   _against("full-sst5", "sst5", ("three-phase", "joint"))),
    "Q6": Question("With phase 3 tuned for each method, do phases 1-2 help over FT?",
                   _against("long-tail-tuned", "snips2", ("three-phase",))),
}
