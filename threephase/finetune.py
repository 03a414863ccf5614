"""Phase 3 / FT: train the head (and, by default, the body) with early stopping on validation only."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback

from .classifier import ClassificationLoss, MLPHead, ThreePhaseClassifier
from .config import FTConfig
from .training import train, training_arguments


def evaluate_split(classifier: ThreePhaseClassifier, texts: Sequence[str], labels: Sequence[int],
                   batch_size: int = 64) -> dict[str, Any]:
    """Accuracy, mean cross-entropy and predicted ids of ``classifier`` on one split."""
    logits = classifier.logits(texts, batch_size)
    targets = torch.as_tensor(list(labels))
    predictions = logits.argmax(dim=-1)
    return {
        "accuracy": float((predictions == targets).float().mean()),
        "loss": float(torch.nn.functional.cross_entropy(logits, targets)),
        "predictions": predictions.tolist(),
    }


class EarlyStopping(TrainerCallback):
    """After each epoch: score validation, keep the best weights, stop when patience runs out.

    Best = highest accuracy, then lowest loss. Training runs at least ``min_epochs`` epochs.
    """

    def __init__(self, classifier: ThreePhaseClassifier, validation: Dataset, config: FTConfig):
        self.classifier, self.validation, self.config = classifier, validation, config
        self.history: list[dict[str, float]] = []
        self.best_key: tuple[float, float] | None = None
        self.best_state: dict[str, dict[str, torch.Tensor]] | None = None
        self.best_epoch = 0
        self.bad_epochs = 0

    def on_epoch_end(self, args, state, control, **kwargs):
        epoch = round(state.epoch or len(self.history) + 1)
        scores = evaluate_split(self.classifier, self.validation["text"], self.validation["label"],
                                self.config.per_device_eval_batch_size)
        train_losses = [e["loss"] for e in state.log_history if "loss" in e and e.get("epoch", 0) > epoch - 1]
        self.history.append({"epoch": epoch, "validation_accuracy": scores["accuracy"],
                             "validation_loss": scores["loss"],
                             "train_loss": sum(train_losses) / len(train_losses) if train_losses else None})
        key = (scores["accuracy"], -scores["loss"])
        if self.best_key is None or key > self.best_key:
            self.best_key, self.best_epoch, self.bad_epochs = key, epoch, 0
            self.best_state = {
                "body": {k: v.detach().cpu().clone() for k, v in self.classifier.body.state_dict().items()},
                "head": copy.deepcopy({k: v.detach().cpu() for k, v in self.classifier.head.state_dict().items()}),
            }
        else:
            self.bad_epochs += 1
        if epoch >= self.config.min_epochs and self.bad_epochs >= self.config.patience:
            control.should_training_stop = True
        self.classifier.head.train()
        return control

    def restore_best(self) -> None:
        if self.best_state is not None:
            self.classifier.body.load_state_dict(self.best_state["body"])
            self.classifier.head.load_state_dict(self.best_state["head"])


def train_ft(body: SentenceTransformer, train_data: Dataset, validation: Dataset, config: FTConfig, *,
             seed: int = 42, output_dir: str | None = None, logging_steps: int = 10,
             device: str | None = None) -> tuple[ThreePhaseClassifier, dict]:
    """Phase 3: fit an MLP head on ``body``; return the classifier at its best validation epoch and a report."""
    label_names = train_data.features["label"].names
    torch.manual_seed(seed)  # the head's initial weights
    head = MLPHead(body.get_embedding_dimension(), len(label_names), config.head_hidden_size, config.activation,
                   config.dropout)
    classifier = ThreePhaseClassifier(body, head, label_names)
    body.requires_grad_(not config.freeze_body)
    stopper = EarlyStopping(classifier, validation, config)
    args = training_arguments(
        config, output_dir=output_dir, seed=seed, logging_steps=logging_steps, device=device,
        num_train_epochs=config.num_train_epochs, adam_epsilon=config.adam_epsilon,
        learning_rate_mapping={r"^head\.": config.head_learning_rate} if config.head_learning_rate else {},
    )
    try:
        report = train(body, train_data.select_columns(["text", "label"]), ClassificationLoss(body, head), args,
                       callbacks=[stopper])
    finally:
        body.requires_grad_(True)
    stopper.restore_best()
    classifier.head.eval()
    return classifier, report | {"epochs": stopper.history, "best_epoch": stopper.best_epoch}
