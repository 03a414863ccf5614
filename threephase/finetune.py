"""Phase 3 / FT: train the head (and, by default, the body) with early stopping on validation only.

The learning rate warms up over a fraction (``warmup_ratio``) of the *first* epoch and then decays linearly over the
whole epoch budget, so early stopping never keeps a model trained before the learning rate peaked.
With ``freeze_body`` the body encodes the training and validation texts once, in eval mode, and the head trains on
the stored vectors: the body's forward pass, the expensive part, then runs once instead of once per epoch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

import torch
from datasets import Dataset
from sklearn.metrics import f1_score
from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm
from transformers import TrainerCallback

from .classifier import ClassificationLoss, MLPHead, ThreePhaseClassifier
from .config import FTConfig
from .logs import progress_bars_off
from .training import (from_main_process, is_main_process, linear_schedule, train, training_arguments,
                       warn_if_few_steps, world_size)

logger = logging.getLogger(__name__)


# Called with (epoch, validation scores) after each phase-3 epoch, when set: how threephase.grid.search prunes a
# trial (an exception raised in it ends training). A context variable, so that no FTConfig field or signature changes.
EPOCH_CALLBACK: ContextVar[Callable[[int, dict[str, float]], None] | None] = ContextVar("epoch_callback", default=None)


def scores_from_logits(logits: torch.Tensor, labels: Sequence[int]) -> dict[str, Any]:
    """Accuracy, macro F1, mean cross-entropy and predicted ids, from the logits of one split."""
    targets = torch.as_tensor(list(labels))
    predictions = logits.argmax(dim=-1)
    return {
        "accuracy": float((predictions == targets).float().mean()),
        "macro_f1": float(f1_score(targets.numpy(), predictions.numpy(), average="macro",
                                   labels=list(range(logits.shape[-1])), zero_division=0)),
        "loss": float(torch.nn.functional.cross_entropy(logits, targets)),
        "predictions": predictions.tolist(),
    }


def balanced_class_weights(labels: Sequence[int], num_labels: int) -> torch.Tensor:
    """n / (K × n_k) per class k, as scikit-learn's "balanced": a rare class weighs as much in total as a common one."""
    counts = torch.bincount(torch.as_tensor(list(labels)), minlength=num_labels).float()
    return len(labels) / (num_labels * counts.clamp(min=1))


def evaluate_split(classifier: ThreePhaseClassifier, texts: Sequence[str], labels: Sequence[int],
                   batch_size: int = 64) -> dict[str, Any]:
    """Accuracy, mean cross-entropy and predicted ids of ``classifier`` on one split."""
    return scores_from_logits(classifier.logits(texts, batch_size), labels)


class EarlyStopping(TrainerCallback):
    """After each epoch: score validation, keep the best weights, stop when patience runs out.

    Best = highest ``metric_for_best_model`` (accuracy, or macro F1), then lowest loss. Training runs at least
    ``min_epochs`` epochs. Under DDP only rank 0
    scores validation; its scores reach every rank, so all ranks keep the same epoch and stop together.
    ``score`` returns the validation scores of the current weights (``accuracy``, ``loss``).
    """

    def __init__(self, classifier: ThreePhaseClassifier, score, config: FTConfig):
        self.classifier, self.score, self.config = classifier, score, config
        self.history: list[dict[str, Any]] = []
        self.best_key: tuple[float, float] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0
        self.bad_epochs = 0

    def end_epoch(self, epoch: int, train_loss: float | None) -> bool:
        """Record epoch ``epoch``; return True when training should stop."""
        scores = self.score() if is_main_process() else None
        scores = from_main_process(scores and {k: scores[k] for k in ("accuracy", "macro_f1", "loss")})
        self.history.append({"epoch": epoch, "validation_accuracy": scores["accuracy"],
                             "validation_macro_f1": scores["macro_f1"], "validation_loss": scores["loss"],
                             "train_loss": train_loss})
        if (callback := EPOCH_CALLBACK.get()) is not None:
            callback(epoch, scores)
        key = (scores[self.config.metric_for_best_model], -scores["loss"])
        if self.best_key is None or key > self.best_key:
            self.best_key, self.best_epoch, self.bad_epochs = key, epoch, 0
            # A frozen body does not change: copying its weights each time would cost more than the head's epoch.
            parts = ("body", "head") if any(p.requires_grad for p in self.classifier.body.parameters()) else ("head",)
            self.best_state = {f"{part}.{k}": v.detach().cpu().clone() for part in parts
                               for k, v in getattr(self.classifier, part).state_dict().items()}
        else:
            self.bad_epochs += 1
        self.classifier.head.train()
        return epoch >= self.config.min_epochs and self.bad_epochs >= self.config.patience

    def on_epoch_end(self, args, state, control, **kwargs):
        epoch = round(state.epoch or len(self.history) + 1)
        losses = [e["loss"] for e in state.log_history if "loss" in e and e.get("epoch", 0) > epoch - 1]
        if self.end_epoch(epoch, sum(losses) / len(losses) if losses else None):
            control.should_training_stop = True
        return control

    def restore_best(self) -> None:
        if self.best_state is not None:
            for part in ("body", "head"):
                state = {k[len(part) + 1:]: v for k, v in self.best_state.items() if k.startswith(f"{part}.")}
                if state:
                    getattr(self.classifier, part).load_state_dict(state)

    # Saved in trainer checkpoints (threephase.training.CheckpointState), so a resumed phase 3 keeps its best epoch.
    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        values = {"history": self.history, "best_key": self.best_key, "best_epoch": self.best_epoch,
                  "bad_epochs": self.bad_epochs}
        return values, dict(self.best_state or {})

    def load_checkpoint_state(self, values: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.history, self.best_epoch, self.bad_epochs = values["history"], values["best_epoch"], values["bad_epochs"]
        self.best_key = tuple(values["best_key"]) if values["best_key"] is not None else None
        self.best_state = tensors or None


# Below this share of the chance loss ln K, a head has learned something; above it, it may be guessing.
LEARNED_BELOW_CHANCE = 0.9
# A selection score this far from chance (1/K) towards 1 is learning, whatever the loss says: an under-confident
# head (a frozen body's) keeps its loss near ln K while it ranks the classes well, and an over-confident one's loss
# rises above ln K on a few confident mistakes.
LEARNED_SCORE_MARGIN = 0.25


def chance_report(report: dict[str, Any], num_labels: int, config: FTConfig | None = None) -> dict[str, Any]:
    """The kept epoch against chance: its validation loss against ln K nats (a uniform guess over K classes), and
    its selection score (``config.metric_for_best_model``) against 1/K.

    A warning says that the head has hardly learned only when both are near chance; it then names only the
    settings that are not already on. A loss above ln K with a score well above chance is an over-confident head,
    not an unlearned one: that is logged as information."""
    chance = math.log(num_labels)
    best_epoch = report["best_epoch"]
    kept = next((e for e in report["epochs"] if e["epoch"] == best_epoch), None)
    loss = kept["validation_loss"] if kept else math.nan
    metric = config.metric_for_best_model if config is not None else "accuracy"
    score = kept.get(f"validation_{metric}") if kept else None
    chance_score = 1 / num_labels
    learned_score = score is not None and score >= chance_score + LEARNED_SCORE_MARGIN * (1 - chance_score)
    relation = "below" if loss < chance else "above" if loss > chance else "at"
    scored = f"validation {metric} {score:.3f} (chance {chance_score:.3f})" if score is not None else "no score"
    if kept and loss > LEARNED_BELOW_CHANCE * chance and not learned_score and is_main_process():
        advice = ["more steps (ft.num_train_epochs" + (f", now {config.num_train_epochs})" if config else ")"),
                  "higher learning rates (ft.learning_rate, ft.head_learning_rate)"]
        if config is None or config.class_weights != "balanced":
            advice.append("on imbalanced classes ft.class_weights=balanced")
        if metric != "macro_f1":
            advice.append("ft.metric_for_best_model=macro_f1")
        logger.warning(
            "Phase 3 / FT kept epoch %d with %s and validation loss %.3f nats, %s chance (ln %d = %.3f): the head "
            "has hardly learned. Give it %s.", best_epoch, scored, loss, relation, num_labels, chance,
            ", ".join(advice[:-1]) + " and " + advice[-1] if len(advice) > 1 else advice[0])
    elif kept and loss > chance and learned_score and is_main_process():
        logger.info(
            "Phase 3 / FT kept epoch %d with %s and validation loss %.3f nats, above chance (ln %d = %.3f): the "
            "head is over-confident on its mistakes, not unlearned.", best_epoch, scored, loss, num_labels, chance)
    return {"chance_loss": chance, "best_validation_loss": loss, "validation_loss_below_chance": chance - loss}


def first_epoch_warmup(config: FTConfig, num_examples: int, *, processes: int | None = None,
                       accumulation: int | None = None) -> int:
    """Warm-up steps: ``warmup_ratio`` of the optimizer steps of one epoch, whatever the epoch budget.

    The trainer splits an epoch over the processes and accumulates gradients as ``training_args`` say (the
    defaults); the frozen-body loop runs the whole epoch in each process, one step per batch (pass 1 and 1)."""
    processes = world_size() if processes is None else processes
    if accumulation is None:
        accumulation = int(config.training_args.get("gradient_accumulation_steps", 1))
    steps_per_epoch = math.ceil(num_examples / (config.per_device_train_batch_size * processes * accumulation))
    return round(config.warmup_ratio * steps_per_epoch)


def train_ft(body: SentenceTransformer, train_data: Dataset, validation: Dataset, config: FTConfig, *,
             seed: int = 42, output_dir: str | None = None, logging_steps: int = 10, device: str | None = None,
             save_steps: int = 0, resume: bool = False, precision: str = "auto") -> tuple[ThreePhaseClassifier, dict]:
    """Phase 3: fit an MLP head on ``body``; return the classifier at its best validation epoch and a report."""
    label_names = train_data.features["label"].names
    torch.manual_seed(seed)  # the head's initial weights
    head = MLPHead(body.get_embedding_dimension(), len(label_names), config.head_hidden_size, config.activation,
                   config.dropout)
    classifier = ThreePhaseClassifier(body, head, label_names, precision=precision)
    weights = balanced_class_weights(train_data["label"], len(label_names)) if config.class_weights else None
    if config.freeze_body:
        report = _train_head_on_vectors(classifier, train_data, validation, config, seed, logging_steps, weights)
        return classifier, report | chance_report(report, len(label_names), config)
    stopper = EarlyStopping(classifier, lambda: evaluate_split(classifier, validation["text"], validation["label"],
                                                               config.per_device_eval_batch_size), config)
    args = training_arguments(
        config, output_dir=output_dir, seed=seed, logging_steps=logging_steps, device=device, save_steps=save_steps,
        num_train_epochs=config.num_train_epochs, adam_epsilon=config.adam_epsilon, precision=precision,
        warmup_steps=first_epoch_warmup(config, len(train_data)),
        learning_rate_mapping={r"^head\.": config.head_learning_rate} if config.head_learning_rate else {},
    )
    loss = ClassificationLoss(body, head, weights.to(body.device) if weights is not None else None)
    report = train(body, train_data.select_columns(["text", "label"]), loss, args,
                   callbacks=[stopper], resume=resume)
    stopper.restore_best()
    classifier.head.eval()
    report = report | {"epochs": stopper.history, "best_epoch": stopper.best_epoch}
    return classifier, report | chance_report(report, len(label_names), config)


def _train_head_on_vectors(classifier: ThreePhaseClassifier, train_data: Dataset, validation: Dataset,
                           config: FTConfig, seed: int, logging_steps: int,
                           weights: torch.Tensor | None = None) -> dict[str, Any]:
    """Phase 3 with a frozen body: encode once, then train the head alone on the stored embeddings.

    Every process trains the same head on the same vectors, so several processes (DDP) agree without a wrapper.
    The trainer's ``training_args`` do not apply here: the loop is a head of two linear layers."""
    start = time.perf_counter()
    body, head = classifier.body, classifier.head
    batch = config.per_device_eval_batch_size
    # One pass over both splits: sentence-transformers sorts the texts by length, so the batches pad less.
    encoded = classifier.encode(list(train_data["text"]) + list(validation["text"]), batch_size=batch)
    encoded = encoded.clone().to(head.layers[0].weight.device)  # the head trains in fp32 on fp32 vectors
    vectors = {"train": encoded[:len(train_data)], "validation": encoded[len(train_data):]}
    encode_seconds = time.perf_counter() - start
    labels = torch.as_tensor(train_data["label"], device=vectors["train"].device)
    validation_labels = validation["label"]

    def score() -> dict[str, Any]:
        head.eval()
        with torch.inference_mode():
            return scores_from_logits(head(vectors["validation"]).float().cpu(), validation_labels)

    stopper = EarlyStopping(classifier, score, config)
    # Fused, as the trainer phases' default optimizer (adamw_torch_fused): one kernel per step, not one per tensor.
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.head_learning_rate or config.learning_rate,
                                  eps=config.adam_epsilon, weight_decay=config.weight_decay, fused=True)
    steps_per_epoch = math.ceil(len(labels) / config.per_device_train_batch_size)
    warmup = first_epoch_warmup(config, len(labels), processes=1, accumulation=1)
    warn_if_few_steps("ft", steps_per_epoch * config.num_train_epochs)
    scheduler = linear_schedule(optimizer, warmup, steps_per_epoch * config.num_train_epochs)
    generator = torch.Generator().manual_seed(seed)
    cross_entropy = torch.nn.CrossEntropyLoss(weight=weights.to(labels.device) if weights is not None else None)
    history, step = [], 0
    body.requires_grad_(False)
    try:
        for epoch in tqdm(range(1, config.num_train_epochs + 1), desc="phase 3 (frozen body)",
                          disable=not is_main_process() or progress_bars_off()):
            head.train()
            order = torch.randperm(len(labels), generator=generator).to(labels.device)
            epoch_losses = []
            for first in range(0, len(order), config.per_device_train_batch_size):
                rows = order[first:first + config.per_device_train_batch_size]
                loss = cross_entropy(head(vectors["train"][rows]), labels[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                epoch_losses.append(loss.item())
                if step == 1 or step % logging_steps == 0:
                    history.append({"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": epoch_losses[-1],
                                    "learning_rate": scheduler.get_last_lr()[0]})
            if stopper.end_epoch(epoch, sum(epoch_losses) / len(epoch_losses)):
                break
    finally:
        body.requires_grad_(True)
    stopper.restore_best()
    head.eval()
    return {"loss_history": history, "steps": step, "wall_time_s": time.perf_counter() - start,
            "encode_time_s": encode_seconds, "encoded_once": True, "epochs": stopper.history,
            "best_epoch": stopper.best_epoch}
