"""Variants and whole runs: one code path for three-phase, Joint and every ablation.

A run loads the data and the body, trains the phases its variant names, evaluates the test split once, and
writes its record: ``config.json``, ``metrics.json`` and ``classifier/``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import DatasetDict

from .classifier import ThreePhaseClassifier
from .config import RunConfig
from .data import class_sizes, load_data
from .errors import ThreePhaseError
from .finetune import evaluate_split, train_ft
from .models import auto_max_seq_length, load_body
from .phases import train_cl, train_dae, train_joint
from .records import atomic_dir, classification_metrics, device_info, library_versions, write_json
from .training import default_device, is_main_process, seed_everything

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """Which phases a variant trains and how it resizes the classes before phase 2."""

    dae: bool
    cl: bool
    joint: bool = False
    resize: bool = True
    max_ratio: float | None = None  # replaces imbalance.max_ratio when set


VARIANTS: dict[str, Variant] = {
    "three-phase": Variant(dae=True, cl=True),
    "joint": Variant(dae=False, cl=False, joint=True),
    "dae-ft": Variant(dae=True, cl=False),
    "cl-ft": Variant(dae=False, cl=True),
    "extra-imb": Variant(dae=True, cl=True, max_ratio=20.0),
    "no-imb": Variant(dae=True, cl=True, resize=False),
    "ft": Variant(dae=False, cl=False),
}


def check_pairable(data: DatasetDict) -> None:
    """Pairs need every class to have two examples, or no positive pair can be made for it."""
    sizes = class_sizes(data["train"])
    single = [name for name, size in sizes.items() if size == 1]
    if single:
        raise ThreePhaseError(
            f"Class {single[0]!r} has a single training example, so phase 2 cannot pair it with its own class: "
            "add examples, draw a larger subset, or use a variant without phase 2 (ft, dae-ft)."
        )


def train_variant(config: RunConfig, data: DatasetDict) -> tuple[ThreePhaseClassifier, dict[str, Any]]:
    """Train the phases of ``config.variant`` on ``data``; return the classifier and per-phase reports."""
    variant = VARIANTS[config.variant]
    seed_everything(config.seed)
    device = config.device or default_device()
    body = load_body(config.model_name_or_path, pooling=config.pooling, device=device)
    texts, labels = data["train"]["text"], data["train"]["label"]
    body.max_seq_length = config.max_seq_length or auto_max_seq_length(body, texts)
    imbalance = None
    if variant.resize:
        imbalance = dataclasses.replace(config.imbalance, max_ratio=variant.max_ratio or config.imbalance.max_ratio)
    if variant.cl or variant.joint:
        check_pairable(data)
    common = {"seed": config.seed, "logging_steps": config.logging_steps, "device": config.device}
    phases: dict[str, Any] = {}
    if variant.joint:
        logger.info("Joint: DAE + CL on one body")
        phases["joint"] = train_joint(body, texts, labels, config.dae, config.cl, imbalance, **common)
    if variant.dae:
        logger.info("Phase 1: DAE")
        phases["dae"] = train_dae(body, texts, config.dae, **common)
    if variant.cl:
        logger.info("Phase 2: CL")
        phases["cl"] = train_cl(body, texts, labels, config.cl, imbalance, **common)
    logger.info("Phase 3: FT")
    classifier, phases["ft"] = train_ft(body, data["train"], data["validation"], config.ft, **common)
    return classifier, phases


def run(config: RunConfig, data: DatasetDict | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run ``config`` end to end and return its metrics; write the run record to ``config.output_dir`` if set.

    >>> from threephase import preset_config, run  # doctest: +SKIP
    >>> metrics = run(preset_config("cpu", "snips2", output_dir="runs/snips2-3p"))  # doctest: +SKIP
    """
    config.validate()
    output = Path(config.output_dir) if config.output_dir else None
    if output is not None and output.exists() and not output.is_dir():
        raise ThreePhaseError(f"--output {str(output)!r} is a file, not a folder: choose a folder path for the run.")
    if output is not None and output.exists() and any(output.iterdir()) and not overwrite:
        raise ThreePhaseError(
            f"Output folder {str(output)!r} already holds files: choose another --output, or pass --overwrite."
        )
    start = time.perf_counter()
    data = data if data is not None else load_data(config.data, seed=config.seed)
    classifier, phases = train_variant(config, data)
    test = evaluate_split(classifier, data["test"]["text"], data["test"]["label"], config.ft.per_device_eval_batch_size)
    label_names = data["train"].features["label"].names
    metrics = classification_metrics(data["test"]["label"], test["predictions"], label_names)
    metrics.update({
        "variant": config.variant,
        "dataset": config.data.dataset or config.data.data_dir,
        "model": config.model_name_or_path,
        "seed": config.seed,
        "split_sizes": {split: len(data[split]) for split in data},
        "class_sizes": class_sizes(data["train"]),
        "phases": phases,
        "wall_time_s": time.perf_counter() - start,
        "versions": library_versions(),
        "device": device_info(classifier.device),
    })
    headline = {k: metrics[k] for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1")}
    classifier.training = {"config": config.to_dict(), "metrics": headline}
    if output is not None and is_main_process():
        with atomic_dir(output) as tmp:
            write_json(tmp / "config.json", config.to_dict())
            write_json(tmp / "metrics.json", metrics)
            classifier.save_pretrained(tmp / "classifier")
    return metrics
