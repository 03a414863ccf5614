"""What every phase shares: seeding, training arguments and running sentence-transformers' trainer.

All three phases train through :class:`SentenceTransformerTrainer`, so ``accelerate launch`` and ``torchrun``
(DDP) work without changes: each process runs the same program on the same seeded data.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
from transformers import TrainerCallback
from transformers.utils import logging as hf_logging

from .errors import ThreePhaseError


def seed_everything(seed: int) -> None:
    """One seed for python, numpy and torch (noise, resizing and pairing take their own seeded generators)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def is_main_process() -> bool:
    """True in single-process runs and on rank 0 of a DDP run (only it writes files)."""
    return int(os.environ.get("RANK", "0")) == 0


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class SyncLossParameters(TrainerCallback):
    """Average the gradients of parameters that live in the loss rather than in the model.

    DDP synchronises only the wrapped model. The FT head and the TSDAE decoder's own weights (its
    cross-attention) sit in the loss module, so without this each process would train its own copy.
    """

    def __init__(self, loss: torch.nn.Module, model: torch.nn.Module):
        in_model = {id(p) for p in model.parameters()}
        self.parameters = [p for p in loss.parameters() if id(p) not in in_model and p.requires_grad]

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        for param in self.parameters:
            if param.grad is not None:
                dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                param.grad /= dist.get_world_size()


def training_arguments(
    settings: Any,
    *,
    output_dir: str | None = None,
    seed: int = 42,
    logging_steps: int = 10,
    device: str | None = None,
    num_train_epochs: float = 1,
    **extra: Any,
) -> SentenceTransformerTrainingArguments:
    """TrainingArguments for one phase from its settings (``learning_rate``, ``per_device_train_batch_size``,
    ``warmup_ratio``, ``weight_decay``). No checkpoints are written: phases hand their body on in memory."""
    return SentenceTransformerTrainingArguments(
        output_dir=output_dir or tempfile.mkdtemp(prefix="threephase-"),
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.per_device_train_batch_size,
        num_train_epochs=num_train_epochs,
        warmup_steps=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        seed=seed,
        data_seed=seed,
        logging_steps=logging_steps,
        logging_first_step=True,
        save_strategy="no",
        report_to="none",
        use_cpu=device == "cpu" or not torch.cuda.is_available(),
        disable_tqdm=not is_main_process(),
        ddp_find_unused_parameters=True,  # BERT-style poolers and the unused decoder layers get no gradient
        **extra,
    )


def train(
    body: SentenceTransformer,
    dataset: Dataset,
    loss: torch.nn.Module,
    args: SentenceTransformerTrainingArguments,
    callbacks: list[TrainerCallback] | None = None,
) -> dict[str, Any]:
    """Train ``body`` in place with ``loss`` on ``dataset``; return the loss history and wall time."""
    several_processes = int(os.environ.get("WORLD_SIZE", "1")) > 1
    several_cpu_processes = several_processes and (args.use_cpu or not torch.cuda.is_available())
    if several_cpu_processes and not any(p.requires_grad for p in body.parameters()):
        # On GPUs accelerate leaves a model without trainable weights unwrapped; on CPU it wraps it in DDP anyway,
        # which torch refuses deep inside the trainer.
        raise ThreePhaseError(
            "A frozen body (freeze_body=True) cannot train in several CPU processes: DDP on CPU needs trainable body "
            "weights. Run one process (a frozen body makes phase 3 cheap), or use GPUs, or set freeze_body=False."
        )
    start = time.perf_counter()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()  # the trainer's info lines drown the progress bar
    try:
        trainer = SentenceTransformerTrainer(
            model=body,
            args=args,
            train_dataset=dataset,
            loss=loss,
            callbacks=[SyncLossParameters(loss, body), *(callbacks or [])],
        )
        trainer.remove_callback(trainer.model_card_callback_class)  # we write our own model card
        trainer.train()
    finally:
        hf_logging.set_verbosity(verbosity)
    history = [
        {k: v for k, v in entry.items() if k in ("step", "epoch", "loss", "learning_rate") or k.startswith("loss_")}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    return {"loss_history": history, "steps": trainer.state.global_step, "wall_time_s": time.perf_counter() - start}
