"""What every phase shares: seeding, training arguments and running sentence-transformers' trainer.

All three phases train through :class:`SentenceTransformerTrainer`, so ``accelerate launch`` and ``torchrun``
(DDP) work without changes: each process runs the same program on the same seeded data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from accelerate.utils import extract_model_from_parallel
from datasets import Dataset
from safetensors.torch import load_file as load_safetensors
from safetensors.torch import save as save_safetensors
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
from torch.optim.lr_scheduler import LambdaLR
from transformers import PrinterCallback, SchedulerType, TrainerCallback
from transformers.utils import logging as hf_logging

from .errors import ThreePhaseError
from .logs import progress_bars_off
from .precision import resolve_precision, trainer_arguments
from .records import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """One seed for python, numpy and torch (noise, resizing and pairing take their own seeded generators)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def busy_cores(interval: float = 0.2) -> float:
    """How many of this machine's cores other processes kept busy over ``interval`` seconds (this one sleeps)."""
    import psutil  # accelerate's dependency

    return psutil.cpu_percent(interval=interval) / 100 * (os.cpu_count() or 1)


def warn_if_cores_busy() -> None:
    """Warn when torch's threads and what already runs on the CPU add up to more than its cores.

    Two training processes that each take every core (torch's default) do not share the CPU evenly: their threads
    wait on each other, and a quickstart ran 13x slower beside a second one. torchrun's answer for several processes
    on one machine is OMP_NUM_THREADS=1 each; a run that finds the cores busy says so, and how to split them. An
    OMP_NUM_THREADS set by the user (or by --jobs, or the tests) is a choice already made: nothing is checked."""
    if "OMP_NUM_THREADS" in os.environ or not is_main_process():
        return
    cores, threads = os.cpu_count() or 1, torch.get_num_threads()
    busy = busy_cores()
    if busy + threads > cores + 0.5:
        logger.warning(
            "About %.1f of this machine's %d cores are busy with other processes, and torch will use %d threads: two "
            "runs that each take every core can be many times slower than one after the other. Run one at a time, "
            "or give each its share: OMP_NUM_THREADS=%d python -m threephase ...", busy, cores, threads,
            max(1, cores // 2))


def is_main_process() -> bool:
    """True in single-process runs and on rank 0 of a DDP run (only it writes files)."""
    return int(os.environ.get("RANK", "0")) == 0


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def several_processes() -> bool:
    """True inside a process group of more than one rank (torchrun, accelerate launch)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (nothing in a single process): rank 0 writes files that the others then read."""
    if several_processes():
        dist.barrier()


def init_processes(device: str | None = None) -> None:
    """Join the process group when launched as several processes (torchrun, accelerate launch), before any work.

    Otherwise the group only exists once a phase builds its TrainingArguments, and what runs before that (the run
    folder, a frozen-body phase 3 with no trainer phase before it) would act as if it ran alone. The group is made
    by accelerate's PartialState, as TrainingArguments makes it (gloo on the CPU, nccl on CUDA), so the trainer
    then finds it and does not start a second one."""
    if world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        return
    from accelerate import PartialState

    PartialState(cpu=device == "cpu" or not torch.cuda.is_available())
    if not several_processes():
        raise ThreePhaseError(
            f"WORLD_SIZE is {world_size()}, but no process group could be started on {device or default_device()}: "
            "launch with torchrun or accelerate launch (which set RANK, LOCAL_RANK and MASTER_ADDR), or unset "
            "WORLD_SIZE to run one process."
        )


def from_main_process(value: Any) -> Any:
    """``value`` as rank 0 has it, on every rank (itself in a single process): decisions that must agree."""
    if world_size() > 1 and not several_processes():
        raise ThreePhaseError(
            f"WORLD_SIZE is {world_size()} but this process has joined no process group, so the ranks cannot agree "
            "(each would decide alone). Call threephase.training.init_processes() first (threephase.run does), or "
            "run a trainer phase before this one."
        )
    if several_processes():
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]
    return value


def one_gpu_per_process(args: SentenceTransformerTrainingArguments) -> SentenceTransformerTrainingArguments:
    """Train a single process on one GPU even when it sees several.

    Else the trainer wraps the body in DataParallel: the batch silently grows by the number of GPUs and phase 3's
    warm-up (computed per process) no longer fits. TrainingArguments has no public setting for this, so the GPU count
    it read is overwritten; the check after it refuses to go on should a transformers release move that count."""
    gpus = args.n_gpu
    if gpus > 1:
        logger.warning(
            "This process sees %d GPUs and trains on the first only. To train on all of them, launch one process "
            "per GPU: torchrun --nproc_per_node %d -m threephase run ... (or accelerate launch).", gpus, gpus)
        args._n_gpu = 1
        if args.n_gpu != 1:
            raise ThreePhaseError(
                f"This process sees {gpus} GPUs, and the trainer would split each batch over them (DataParallel). "
                f"Use one GPU (CUDA_VISIBLE_DEVICES=0), or all of them with one process each: torchrun "
                f"--nproc_per_node {gpus} -m threephase run ..."
            )
    return args


def loss_only_parameters(loss: torch.nn.Module, model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The weights that live in ``loss`` but not in ``model`` (the FT head, the TSDAE decoder's cross-attention):
    neither DDP nor the trainer's checkpoints know about them."""
    in_model = {id(p) for p in model.parameters()}
    return {name: p for name, p in loss.named_parameters() if id(p) not in in_model}


class SyncLossParameters(TrainerCallback):
    """Average the gradients of parameters that live in the loss rather than in the model.

    DDP synchronises only the wrapped model. The FT head and the TSDAE decoder's own weights (its
    cross-attention) sit in the loss module, so without this each process would train its own copy.
    """

    def __init__(self, loss: torch.nn.Module, model: torch.nn.Module):
        self.parameters = [p for p in loss_only_parameters(loss, model).values() if p.requires_grad]

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if not several_processes():
            return
        for param in self.parameters:
            if param.grad is not None:
                dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                param.grad /= dist.get_world_size()


def check_training_args(user: dict[str, Any], name: str = "training_args") -> None:
    """Refuse names that TrainingArguments does not know (run() checks every phase's before any phase trains)."""
    known = {f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments)}
    unknown = sorted(set(user) - known)
    if unknown:
        raise ThreePhaseError(
            f"{name} has settings that TrainingArguments does not know: {', '.join(unknown)}. Use the names "
            "of transformers' TrainingArguments, e.g. bf16, gradient_accumulation_steps, gradient_checkpointing, "
            "dataloader_num_workers, report_to, torch_compile."
        )


def training_arguments(
    settings: Any,
    *,
    output_dir: str | None = None,
    seed: int = 42,
    logging_steps: int = 10,
    device: str | None = None,
    num_train_epochs: float = 1,
    save_steps: int = 0,
    precision: str = "auto",
    **extra: Any,
) -> SentenceTransformerTrainingArguments:
    """TrainingArguments for one phase from its settings (``learning_rate``, ``per_device_train_batch_size``,
    ``warmup_ratio``, ``weight_decay``), then ``extra``, then the phase's own ``training_args`` dict, unchanged.

    With ``save_steps`` > 0 the trainer writes a resumable checkpoint under ``output_dir`` every ``save_steps``
    optimizer steps (the last two are kept); otherwise the phase hands its body on in memory only.

    ``precision`` (:mod:`threephase.precision`) sets the trainer's ``bf16`` / ``fp16``; a ``bf16`` or ``fp16`` key
    in the phase's ``training_args`` still wins."""
    values: dict[str, Any] = dict(
        output_dir=output_dir or tempfile.mkdtemp(prefix="threephase-"),
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.per_device_train_batch_size,
        num_train_epochs=num_train_epochs,
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a fraction of the steps
        weight_decay=settings.weight_decay,
        seed=seed,
        data_seed=seed,
        logging_steps=logging_steps,
        logging_first_step=True,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        save_total_limit=2,  # the newest may be cut short by a kill; the one before it is then complete
        report_to="none",
        use_cpu=device == "cpu" or not torch.cuda.is_available(),
        disable_tqdm=not is_main_process() or progress_bars_off(),
        ddp_find_unused_parameters=True,  # BERT-style poolers and the unused decoder layers get no gradient
    )
    values.update(trainer_arguments(resolve_precision(precision, "cpu" if values["use_cpu"] else None)))
    values.update(extra)
    user = dict(getattr(settings, "training_args", None) or {})
    check_training_args(user)
    values.update(user)
    try:
        args = SentenceTransformerTrainingArguments(**values)
    except (ValueError, TypeError, ImportError) as err:
        raise ThreePhaseError(f"TrainingArguments refused the phase's settings {user}: {err}") from None
    return one_gpu_per_process(args)


def warmup_then_linear(step: int, warmup: int, total: int) -> float:
    """The learning-rate multiplier at optimizer step ``step`` (from 0): a linear warm-up over ``warmup`` steps, then
    a linear decay to 0 at ``total``.

    Unlike transformers' linear schedule, whose first step has learning rate 0, the warm-up counts the first step as
    1 / (warmup + 1): a phase of one or two steps would otherwise spend one of them on nothing."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> LambdaLR:
    """:func:`warmup_then_linear` as a scheduler (a ``partial``, so that checkpoints save and restore it)."""
    return LambdaLR(optimizer, functools.partial(warmup_then_linear, warmup=warmup, total=total))


# Fewer optimizer steps than this train next to nothing (half of them are warm-up); each phase says how to get more.
MIN_STEPS = 10
MORE_STEPS = {
    "dae": "raise dae.num_train_epochs (repetitions of the texts with fresh noise), add unlabelled texts "
           "(data.unlabelled) or lower dae.per_device_train_batch_size",
    "cl": "raise cl.pair_multiplier or lower cl.per_device_train_batch_size",
    "joint": "raise cl.pair_multiplier or dae.num_train_epochs, or lower cl.per_device_train_batch_size",
    "ft": "raise ft.num_train_epochs or lower ft.per_device_train_batch_size",
}
PHASE_TITLES = {"dae": "Phase 1 / DAE", "cl": "Phase 2 / CL", "joint": "Joint", "ft": "Phase 3 / FT"}


def warn_if_few_steps(phase: str, steps: int) -> None:
    """A warning naming the setting that gives ``phase`` more steps, when it has fewer than :data:`MIN_STEPS`."""
    if steps < MIN_STEPS and is_main_process():
        logger.warning("%s has only %d optimizer step%s, too few to train the body: %s.", PHASE_TITLES[phase],
                       steps, "" if steps == 1 else "s", MORE_STEPS[phase])


class PhaseTrainer(SentenceTransformerTrainer):
    """The sentence-transformers trainer with our linear schedule (first step above 0) and the few-steps warning."""

    def __init__(self, *args: Any, phase: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.phase = phase

    def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
        """No sentence-transformers model card (threephase writes its own, :mod:`threephase.model_card`): its
        callback would sample "widget examples" while the trainer is built, a progress bar on every phase that no
        setting turns off in a notebook (the hook sentence-transformers offers for this is overriding this method)."""

    def compute_loss_context_manager(self) -> contextlib.ExitStack:
        """The loss under the run's autocast too: accelerate wraps only the body's ``forward`` in it, so a loss with a
        network of its own (phase 1's decoder and its vocabulary projection, half of phase 1's work) ran in fp32
        under ``bf16=True``, and phase 1 gained nothing from bf16 (1.0x, where a bare loop gains 1.1-1.3x)."""
        stack = super().compute_loss_context_manager()
        if self.args.bf16 or self.args.fp16:
            stack.enter_context(self.accelerator.autocast())
        return stack

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self.lr_scheduler is None:
            warn_if_few_steps(self.phase, num_training_steps)
            if self.args.lr_scheduler_type == SchedulerType.LINEAR:  # any other type the user asked for is theirs
                self.lr_scheduler = linear_schedule(optimizer or self.optimizer,
                                                    self.args.get_warmup_steps(num_training_steps), num_training_steps)
                self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)


STATE_TENSORS, STATE_JSON = "threephase_state.safetensors", "threephase_state.json"


class CheckpointState(TrainerCallback):
    """Adds to each trainer checkpoint what the trainer does not save, and reads it back on resume.

    The trainer saves the body, the optimizer, the scheduler and the RNG states. The weights that live in the loss
    (the FT head, the TSDAE decoder's cross-attention) and the state of stateful callbacks (early stopping) are ours.
    ``threephase_state.json`` is written last, so a checkpoint without it was cut short and is not resumed from.
    """

    def __init__(self, loss: torch.nn.Module, model: torch.nn.Module, stateful: list[Any] | None = None):
        self.loss_parameters = loss_only_parameters(loss, model)
        self.stateful = stateful or []

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        tensors = {f"loss.{n}": p.detach().cpu().contiguous() for n, p in self.loss_parameters.items()}
        values: dict[str, Any] = {"global_step": state.global_step, "callbacks": []}
        for index, item in enumerate(self.stateful):
            item_values, item_tensors = item.checkpoint_state()
            values["callbacks"].append(item_values)
            tensors.update({f"callback{index}.{k}": v.detach().cpu().contiguous() for k, v in item_tensors.items()})
        atomic_write_bytes(folder / STATE_TENSORS, save_safetensors(tensors))
        atomic_write_text(folder / STATE_JSON, json.dumps(values))

    def load(self, checkpoint: Path) -> None:
        tensors = load_safetensors(str(checkpoint / STATE_TENSORS))
        values = json.loads((checkpoint / STATE_JSON).read_text())
        with torch.no_grad():
            for name, param in self.loss_parameters.items():
                param.copy_(tensors[f"loss.{name}"])
        for index, item in enumerate(self.stateful):
            prefix = f"callback{index}."
            item.load_checkpoint_state(values["callbacks"][index],
                                       {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})


def last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint (one with ``threephase_state.json``) under ``output_dir``, if any."""
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if (p / STATE_JSON).is_file()]
    return max(folders, key=lambda p: int(p.name.split("-")[-1]), default=None)


def train(
    body: SentenceTransformer,
    dataset: Dataset,
    loss: torch.nn.Module,
    args: SentenceTransformerTrainingArguments,
    callbacks: list[TrainerCallback] | None = None,
    resume: bool = False,
    phase: str = "ft",
) -> dict[str, Any]:
    """Train ``body`` in place with ``loss`` on ``dataset`` as ``phase`` (dae, cl, joint, ft); return the loss
    history and wall time.

    With ``resume``, training continues from the newest complete checkpoint in ``args.output_dir``, if there is
    one. Callbacks with ``checkpoint_state`` / ``load_checkpoint_state`` methods are saved in checkpoints too."""
    start = time.perf_counter()
    callbacks = list(callbacks or [])
    state = CheckpointState(loss, body, [c for c in callbacks if hasattr(c, "checkpoint_state")])
    checkpoint = last_checkpoint(args.output_dir) if resume else None
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()  # the trainer's info lines drown the progress bar
    try:
        trainer = PhaseTrainer(
            phase=phase,
            model=body,
            args=args,
            train_dataset=dataset,
            loss=loss,
            callbacks=[SyncLossParameters(loss, body), state, *callbacks],
        )
        if args.disable_tqdm:  # without a bar the trainer prints every log line instead; the report keeps them
            trainer.remove_callback(PrinterCallback)
        if checkpoint is not None:
            logger.info("Resuming from %s", checkpoint)
            state.load(checkpoint)
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        finally:
            # accelerate patched the body's forward with the run's autocast; left there, the trained body would go
            # on computing in bf16 after training (its encode, predict, a later fp32 phase) whatever is asked of it
            extract_model_from_parallel(body, keep_fp32_wrapper=False)
    finally:
        hf_logging.set_verbosity(verbosity)
    history = [
        {k: v for k, v in entry.items() if k in ("step", "epoch", "loss", "learning_rate") or k.startswith("loss_")}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    return {"loss_history": history, "steps": trainer.state.global_step, "wall_time_s": time.perf_counter() - start,
            "resumed_from_step": int(checkpoint.name.split("-")[-1]) if checkpoint else None}
