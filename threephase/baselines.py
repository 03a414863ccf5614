"""Baselines on the same data draw as the variants: ``logreg``, a class-balanced logistic regression on the frozen
pre-trained body's embeddings, and ``setfit``, SetFit (Tunstall et al., 2022) run by its own library.

``logreg`` answers the first question a reader asks of a fine-tuning method: how far does the body get with no
training at all? ``setfit`` is the published method closest to ``cl-ft``: a contrastive step on pairs, then a
logistic regression on the tuned body. Both classifiers are a :class:`~threephase.classifier.ThreePhaseClassifier`
whose head is the regression's single linear layer, so they save, load and predict like any other.

``setfit`` needs the ``baselines`` extra (``pip install "threephase[baselines]"``: SetFit 1.2 or later, the first
release for transformers 5).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any
from unittest import mock

import numpy as np
import torch
from datasets import Dataset
from packaging.version import Version
from sentence_transformers import SentenceTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from transformers.utils import logging as hf_logging

from .classifier import MLPHead, ThreePhaseClassifier
from .config import CLConfig, RunConfig
from .errors import ThreePhaseError
from .pairs import num_pairs_for
from .precision import autocast, resolve_precision
from .training import training_arguments

logger = logging.getLogger(__name__)

SETFIT_MIN_VERSION = "1.2"
INSTALL_BASELINES = 'pip install "threephase[baselines]"'


def regression_classifier(body: SentenceTransformer, regression: LogisticRegression, vectors: np.ndarray,
                          labels: Sequence[int], label_names: Sequence[str],
                          precision: str = "auto") -> tuple[ThreePhaseClassifier, dict[str, Any]]:
    """The classifier made of ``body`` and a fitted ``regression`` (on ``vectors``, the body's embeddings of the
    training texts), its head the single linear layer ``MLPHead(hidden_size=None)`` that gives the regression's
    probabilities; and the regression's training accuracy and solver iterations."""
    weight, bias = np.zeros((len(label_names), vectors.shape[1])), np.zeros(len(label_names))
    if len(regression.classes_) == 2:  # one score z for the second class: softmax([0, z]) is the regression's sigmoid
        weight[regression.classes_[1]], bias[regression.classes_[1]] = regression.coef_[0], regression.intercept_[0]
    else:
        weight[regression.classes_], bias[regression.classes_] = regression.coef_, regression.intercept_
    head = MLPHead(vectors.shape[1], len(label_names), hidden_size=None)
    with torch.no_grad():
        head.layers[0].weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head.layers[0].bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    report = {"train_accuracy": float(regression.score(vectors, np.asarray(labels))),
              "iterations": int(np.max(regression.n_iter_))}
    return ThreePhaseClassifier(body, head.eval(), label_names, precision=precision), report


# The inverse regularisation strengths a baseline's regression chooses from on validation, as phase 3 chooses its
# epoch there: every method then reads the same labelled examples for training and for selection.
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


def regression_on_validation(vectors: np.ndarray, labels: Sequence[int], validation_vectors: np.ndarray,
                             validation_labels: Sequence[int], *, seed: int = 42, class_weight: str | None = None,
                             C: float | None = None) -> tuple[LogisticRegression, dict[str, Any]]:
    """A logistic regression fitted on the training vectors for each C of :data:`C_GRID` (or for ``C`` alone, when
    given: ``logreg.C``, e.g. from a search); the one with the best validation macro-F1 (then accuracy; then the
    smaller C) is kept, with the validation scores of every C."""
    scored = []
    for c in C_GRID if C is None else (C,):
        model = LogisticRegression(C=c, class_weight=class_weight, max_iter=2000, random_state=seed)
        predictions = model.fit(vectors, np.asarray(labels)).predict(validation_vectors)
        scored.append(((f1_score(validation_labels, predictions, average="macro", zero_division=0),
                        accuracy_score(validation_labels, predictions), -c), model))
    (f1, accuracy, minus_c), best = max(scored, key=lambda item: item[0])
    return best, {"C": -minus_c, "validation_macro_f1": float(f1), "validation_accuracy": float(accuracy),
                  "validation_by_C": {str(-key[2]): float(key[0]) for key, _ in scored}}


def encode_texts(body: SentenceTransformer, texts: Sequence[str], precision: str = "auto",
                 batch_size: int = 64) -> np.ndarray:
    """The body's fp32 embeddings of ``texts`` as a numpy array, computed in ``precision`` (the regression fits in
    float64 whatever the body computed in)."""
    with autocast(resolve_precision(precision, body.device), body.device):
        vectors = body.encode(list(texts), batch_size=batch_size, convert_to_tensor=True)
    return vectors.float().cpu().numpy()


def train_logreg(body: SentenceTransformer, train_data: Dataset, validation: Dataset, *, seed: int = 42,
                 batch_size: int = 64, C: float | None = None,
                 precision: str = "auto") -> tuple[ThreePhaseClassifier, dict[str, Any]]:
    """Fit ``LogisticRegression(class_weight="balanced")`` on the body's embeddings of the training texts, its C
    chosen on validation (:func:`regression_on_validation`) unless ``C`` is given."""
    start = time.perf_counter()
    texts = list(train_data["text"])
    encoded = encode_texts(body, texts + list(validation["text"]), precision, batch_size)
    vectors, validation_vectors = encoded[:len(texts)], encoded[len(texts):]
    labels = np.asarray(train_data["label"])
    model, selection = regression_on_validation(vectors, labels, validation_vectors, validation["label"], seed=seed,
                                                class_weight="balanced", C=C)
    classifier, report = regression_classifier(body, model, vectors, labels, train_data.features["label"].names,
                                               precision)
    return classifier, {"wall_time_s": time.perf_counter() - start, **report, **selection}


def require_setfit() -> ModuleType:
    """The ``setfit`` module, or a :class:`ThreePhaseError` that says how to install it."""
    try:
        import setfit
    except ImportError as err:
        raise ThreePhaseError(
            f"The setfit variant needs SetFit {SETFIT_MIN_VERSION} or later, which could not be imported ({err}). "
            f"Install the baselines extra: {INSTALL_BASELINES}"
        ) from None
    if Version(setfit.__version__) < Version(SETFIT_MIN_VERSION):
        raise ThreePhaseError(
            f"The setfit variant needs SetFit {SETFIT_MIN_VERSION} or later (the first for transformers 5), found "
            f"{setfit.__version__}. Upgrade it: {INSTALL_BASELINES} --upgrade"
        )
    return setfit


def require_extras(variant: str) -> None:
    """Raise the install advice when ``variant`` is a baseline whose optional package is missing (``setfit``)."""
    if variant == "setfit":
        require_setfit()


def train_baseline(config: RunConfig, body: SentenceTransformer, train_data: Dataset,
                   validation: Dataset, precision: str = "auto") -> tuple[ThreePhaseClassifier, dict[str, Any]]:
    """Train the baseline that ``config.variant`` names (``logreg`` or ``setfit``) on ``body`` and the training
    split, choosing its regression's C on ``validation``; return the classifier and the report that the run record
    keeps under the variant's name."""
    if config.variant == "setfit":
        logger.info("Baseline: SetFit (contrastive pairs, then a logistic regression on the tuned body)")
        return train_setfit(body, train_data, validation, config.cl, seed=config.seed, device=config.device,
                            logging_steps=config.logging_steps, C=config.logreg.C, precision=precision)
    logger.info("Baseline: logistic regression on the frozen body's embeddings")
    return train_logreg(body, train_data, validation, seed=config.seed, C=config.logreg.C, precision=precision)


def setfit_iterations(num_examples: int, num_classes: int, pair_multiplier: float) -> int:
    """SetFit's ``num_iterations`` that draws as many pairs as phase 2 would from the same examples (no resize).

    SetFit draws 2 × ``num_iterations`` × n pairs (as many positive as negative); phase 2 draws ``pair_multiplier``
    × ⌊log2 K⌋ × n. So ``num_iterations`` is half the latter's pairs per example, rounded, at least 1."""
    return max(1, round(num_pairs_for(num_examples, num_classes, pair_multiplier) / (2 * num_examples)))


def train_setfit(body: SentenceTransformer, train_data: Dataset, validation: Dataset, config: CLConfig, *,
                 seed: int = 42, device: str | None = None, logging_steps: int = 10,
                 C: float | None = None, precision: str = "auto") -> tuple[ThreePhaseClassifier, dict[str, Any]]:
    """SetFit with its defaults, through its own ``Trainer``: one epoch of ``CosineSimilarityLoss`` on pairs of
    training texts (score 1 for the same class, 0 otherwise), then ``LogisticRegression()`` on the tuned body's
    embeddings, the body frozen, its C chosen on ``validation`` as ``logreg``'s (:func:`regression_on_validation`),
    unless ``C`` is given.
    ``body`` is tuned in place and becomes the classifier's body.

    Our settings map onto SetFit's ``TrainingArguments`` as follows (phase 2's, so that ``setfit`` and ``cl-ft``
    differ in the method, not the budget):

    * ``seed`` → ``seed`` (SetFit's seeding and batch order; its pair sampler always shuffles with seed 42);
    * ``config.per_device_train_batch_size`` → ``batch_size``; ``config.learning_rate`` → ``body_learning_rate``;
      ``config.warmup_ratio`` → ``warmup_proportion``; ``config.weight_decay`` → ``l2_weight``;
      ``num_epochs`` = 1, as phase 2;
    * ``config.pair_multiplier`` → ``num_iterations`` = :func:`setfit_iterations`: about as many pairs as phase 2
      would draw from the same training split without its resize;
    * the body's ``max_seq_length`` (set by the run) truncates the texts in both steps;
    * ``device`` and ``config.training_args`` (``bf16``, ``gradient_accumulation_steps``, ...) reach the
      sentence-transformers trainer that SetFit drives (``fp16`` as SetFit's ``use_amp``).

    Not used: the resize (``imbalance``) and ``balance_scores`` (SetFit always draws as many positive pairs as
    negative ones, repeating pairs as needed); SetFit's pairs may repeat and may pair a text with itself.
    """
    setfit = require_setfit()
    from setfit import SetFitModel, Trainer, TrainingArguments
    from setfit import trainer as setfit_trainer

    start = time.perf_counter()
    label_names = train_data.features["label"].names
    texts, labels = list(train_data["text"]), list(train_data["label"])
    num_iterations = setfit_iterations(len(texts), len(set(labels)), config.pair_multiplier)
    model = SetFitModel(model_body=body, model_head=LogisticRegression(), labels=list(label_names))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()  # the trainer's info lines drown the progress bar
    try:
        with tempfile.TemporaryDirectory(prefix="threephase-setfit-") as tmp:
            # SetFit builds the sentence-transformers trainer's arguments from a few of its own; ours (the device,
            # the user's training_args, DDP settings) are made as for phase 2, and SetFit then sets its own on them.
            st_args = training_arguments(config, output_dir=tmp, seed=seed, logging_steps=logging_steps, device=device,
                                         precision=precision)
            args = TrainingArguments(
                output_dir=tmp, batch_size=config.per_device_train_batch_size, num_epochs=1,
                body_learning_rate=config.learning_rate, num_iterations=num_iterations,
                warmup_proportion=config.warmup_ratio, l2_weight=config.weight_decay, use_amp=bool(st_args.fp16),
                seed=seed, report_to="none", save_strategy="no", logging_steps=logging_steps,
                show_progress_bar=False,
            )
            with mock.patch.object(setfit_trainer, "SentenceTransformerTrainingArguments", lambda **_: st_args):
                trainer = Trainer(model=model, args=args,
                                  train_dataset=Dataset.from_dict({"text": texts, "label": labels}))
            trainer.train()
    finally:
        hf_logging.set_verbosity(verbosity)
    state = trainer.st_trainer.state
    history = [{"step": e["step"], "epoch": e["epoch"], "loss": e["embedding_loss"],
                "learning_rate": e["learning_rate"]} for e in state.log_history if "embedding_loss" in e]
    encoded = encode_texts(body, texts + list(validation["text"]), precision)
    vectors = encoded[:len(texts)]
    head, selection = regression_on_validation(vectors, labels, encoded[len(texts):], validation["label"], seed=seed)
    classifier, report = regression_classifier(body, head, vectors, labels, label_names, precision)
    return classifier, {
        "wall_time_s": time.perf_counter() - start, **report, **selection, "num_iterations": num_iterations,
        "num_pairs": len(trainer.st_trainer.train_dataset), "steps": state.global_step, "loss_history": history,
        "setfit_version": setfit.__version__,
    }
