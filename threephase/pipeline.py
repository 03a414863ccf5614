"""Variants and whole runs: one code path for three-phase, Joint and every ablation.

A run loads the data and the body, trains the phases its variant names, evaluates the test split once, and
writes its record: ``config.json``, ``metrics.json`` and ``classifier/``. It returns a :class:`RunResult`: the
metrics and the trained classifier. A run killed on the way keeps its finished phases and checkpoints in the run
folder, and ``run(..., resume=True)`` continues it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import DatasetDict

from .baselines import require_extras, train_baseline
from .classifier import ThreePhaseClassifier
from .config import ImbalanceConfig, RunConfig, changed_settings
from .data import class_sizes, data_fingerprint, load_data, sizes_before_subset
from .errors import ThreePhaseError
from .finetune import evaluate_split, train_ft
from .models import auto_max_seq_length, check_max_seq_length, load_body
from .phases import train_cl, train_dae, train_joint
from .precision import resolve_precision
from .records import atomic_dir, classification_metrics, device_info, library_versions, write_json
from .training import (barrier, check_training_args, default_device, init_processes, is_main_process, seed_everything,
                       warn_if_cores_busy)
from .user_data import prepare_data

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """Which phases a variant trains and how it resizes the classes before phase 2."""

    dae: bool
    cl: bool
    joint: bool = False
    resize: bool = True
    max_ratio: float | None = None  # replaces imbalance.max_ratio when set
    baseline: bool = False  # none of our phases: a baseline of threephase.baselines named like the variant

    def imbalance(self, configured: ImbalanceConfig) -> ImbalanceConfig | None:
        """The resize this variant applies before phase 2 (the configured one, with its own max_ratio), or None."""
        if not self.resize:
            return None
        return dataclasses.replace(configured, max_ratio=self.max_ratio or configured.max_ratio)


VARIANTS: dict[str, Variant] = {
    "three-phase": Variant(dae=True, cl=True),
    "joint": Variant(dae=False, cl=False, joint=True),
    "dae-ft": Variant(dae=True, cl=False),
    "cl-ft": Variant(dae=False, cl=True),
    "extra-imb": Variant(dae=True, cl=True, max_ratio=20.0),
    "no-imb": Variant(dae=True, cl=True, resize=False),
    "ft": Variant(dae=False, cl=False),
    "logreg": Variant(dae=False, cl=False, resize=False, baseline=True),
    "setfit": Variant(dae=False, cl=False, resize=False, baseline=True),  # needs the baselines extra
}


class RunResult:
    """What :func:`run` returns: ``metrics`` (the dict also written to ``metrics.json``), the trained
    ``classifier``, and ``output_dir`` (the run folder, or None).

    For a run that had already finished (``run(..., resume=True)``), the classifier is loaded from the run folder
    when first used.
    """

    def __init__(self, metrics: dict[str, Any], classifier: ThreePhaseClassifier | None = None,
                 output_dir: str | Path | None = None, device: str | None = None):
        if classifier is None and output_dir is None:
            raise ThreePhaseError("A RunResult needs its classifier or the run folder that holds it.")
        self.metrics = metrics
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self._classifier = classifier
        self._device = device

    @property
    def classifier(self) -> ThreePhaseClassifier:
        if self._classifier is None:
            self._classifier = ThreePhaseClassifier.from_pretrained(self.output_dir, device=self._device)
        return self._classifier

    def __repr__(self) -> str:
        scores = ", ".join(f"{k}={self.metrics[k]:.4f}" for k in ("accuracy", "macro_f1") if k in self.metrics)
        return f"RunResult({scores}, output_dir={str(self.output_dir) if self.output_dir else None!r})"


def check_pairable(data: DatasetDict) -> None:
    """Pairs need every class to have two examples, or no positive pair can be made for it."""
    sizes = class_sizes(data["train"])
    single = [name for name, size in sizes.items() if size == 1]
    if single:
        raise ThreePhaseError(
            f"Class {single[0]!r} has a single training example, so phase 2 cannot pair it with its own class: "
            "add examples, draw a larger subset, or use a variant without phase 2 (ft, dae-ft)."
        )


def _phase_steps(variant: Variant) -> list[str]:
    """The phases before phase 3 that ``variant`` trains, in order."""
    return [name for name, wanted in (("joint", variant.joint), ("dae", variant.dae), ("cl", variant.cl)) if wanted]


def train_variant(config: RunConfig, data: DatasetDict, workdir: str | Path | None = None,
                  resume: bool = False) -> tuple[ThreePhaseClassifier, dict[str, Any]]:
    """Train the phases of ``config.variant`` on ``data``; return the classifier and per-phase reports.

    With a ``workdir``, each finished phase leaves its body (safetensors) and report in ``workdir/phases/<phase>/``,
    and long phases leave trainer checkpoints there every ``config.save_steps`` steps. With ``resume``, finished
    phases are loaded instead of trained, and a phase cut short continues from its newest checkpoint.
    """
    variant = VARIANTS[config.variant]
    seed_everything(config.seed)
    device = config.device or default_device()
    precision = resolve_precision(config.precision, device)
    texts, labels = data["train"]["text"], data["train"]["label"]
    # Phase 1 (and Joint's DAE part) may also read texts without labels; phases 2 and 3 read labelled ones only.
    dae_texts = list(texts) + (list(data["unlabelled"]["text"]) if "unlabelled" in data else [])
    imbalance = variant.imbalance(config.imbalance)
    if variant.cl or variant.joint:
        check_pairable(data)
    steps = _phase_steps(variant)
    folders = {name: Path(workdir) / "phases" / name for name in (*steps, "ft")} if workdir else {}
    # With resume, the phases that finished in order are loaded, not trained again.
    done = list(itertools.takewhile(lambda name: resume and name in folders
                                    and (folders[name] / PHASE_REPORT).is_file(), steps))
    phases: dict[str, Any] = {name: json.loads((folders[name] / PHASE_REPORT).read_text()) for name in done}
    if done:
        logger.info("Resuming after %s: loading its body from %s", done[-1], folders[done[-1]] / "body")
        body = load_body(str(folders[done[-1]] / "body"), device=device)
    else:
        body = load_body(config.model_name_or_path, pooling=config.pooling, device=device)
    body.max_seq_length = config.max_seq_length or auto_max_seq_length(body, texts)

    def where(name: str) -> dict[str, Any]:
        folder = folders.get(name)
        return {"seed": config.seed, "logging_steps": config.logging_steps, "device": config.device,
                "output_dir": str(folder) if folder else None, "save_steps": config.save_steps if folder else 0,
                "resume": resume, "precision": precision}

    titles = {"joint": "Joint: DAE + CL on one body", "dae": "Phase 1: DAE", "cl": "Phase 2: CL"}
    for name in steps[len(done):]:
        logger.info(titles[name])
        if name == "joint":
            phases[name] = train_joint(body, texts, labels, config.dae, config.cl, imbalance,
                                       dae_weight=config.joint.dae_weight, dae_texts=dae_texts, **where(name))
        elif name == "dae":
            phases[name] = train_dae(body, dae_texts, config.dae, **where(name))
        else:
            phases[name] = train_cl(body, texts, labels, config.cl, imbalance, **where(name))
        if name in folders and is_main_process():
            _keep_phase(body, phases[name], folders[name])
        barrier()
    if variant.baseline:
        classifier, phases[config.variant] = train_baseline(config, body, data["train"], data["validation"], precision)
        return classifier, phases
    logger.info("Phase 3: FT")
    classifier, phases["ft"] = train_ft(body, data["train"], data["validation"], config.ft, **where("ft"))
    return classifier, phases


PHASE_REPORT = "report.json"


def _resumable(output: Path) -> bool:
    """Whether a run folder holds a finished phase or a trainer checkpoint to continue from."""
    return any((output / "phases").glob("*/" + PHASE_REPORT)) or any((output / "phases").glob("*/checkpoint-*"))


def _keep_phase(body, report: dict[str, Any], folder: Path) -> None:
    """Save a finished phase's body and report (the report last: it marks the phase done), drop its checkpoints."""
    with atomic_dir(folder / "body") as tmp:
        body.save_pretrained(str(tmp), safe_serialization=True)
    write_json(folder / PHASE_REPORT, report)
    for checkpoint in folder.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)


def _check_writable(output: Path) -> None:
    """Refuse a run folder that cannot be written, before any data or model loads (a probe file, then gone)."""
    base = next((folder for folder in (output, *output.parents) if folder.exists()), Path.cwd())
    problem = None
    if not os.access(base, os.W_OK | os.X_OK):
        problem = "it is read-only for this user"
    else:
        try:
            with tempfile.TemporaryFile(dir=base):
                pass
        except OSError as err:
            problem = err.strerror or type(err).__name__
    if problem:
        where = "" if base == output else f" (its nearest existing folder {str(base)!r})"
        raise ThreePhaseError(
            f"Cannot write the run folder {str(output)!r}{where}: {problem}. Choose an --output where you can "
            "write, or make that folder writable."
        )


def _check_output(config: RunConfig, output: Path, overwrite: bool, resume: bool) -> dict[str, Any] | None:
    """Prepare the run folder; return the saved metrics when ``resume`` finds the run already finished."""
    if output.exists() and not output.is_dir():
        raise ThreePhaseError(f"--output {str(output)!r} is a file, not a folder: choose a folder path for the run.")
    _check_writable(output)
    if not output.exists() or not any(output.iterdir()):
        if resume:
            logger.warning("--resume: %s holds no run to continue (%s); starting the run afresh.", output,
                           "it is empty" if output.exists() else "it does not exist")
        return None
    saved = output / "config.json"
    if resume and saved.is_file():
        changed = changed_settings(json.loads(saved.read_text()), config.to_dict())
        if changed:
            raise ThreePhaseError(
                f"Cannot resume {str(output)!r}: it was started with other settings ({changed}). Resume with the "
                "same settings, or start again with --overwrite."
            )
        if (output / "metrics.json").is_file():
            logger.info("%s already finished; returning its metrics.", output)
            return json.loads((output / "metrics.json").read_text())
        return None
    if overwrite:
        if is_main_process():
            shutil.rmtree(output)
        barrier()
        return None
    hint = " To continue it, pass --resume." if saved.is_file() and not (output / "metrics.json").is_file() else ""
    raise ThreePhaseError(
        f"Output folder {str(output)!r} already holds files.{hint} Choose another --output, or pass --overwrite."
    )


DATA_RECORD = "data.json"


def data_record(data: DatasetDict) -> dict[str, Any]:
    """What a run folder keeps of its data from the start: a resumed run must train on the same draw."""
    return {"data_fingerprint": data_fingerprint(data), "split_sizes": {split: len(data[split]) for split in data}}


def check_same_data(output: Path, drawn: dict[str, Any]) -> None:
    """Refuse to resume ``output`` on data other than the data its finished phases trained on."""
    path = output / DATA_RECORD
    if not path.is_file():  # a run folder from before the data was recorded: nothing to compare with
        return
    saved = json.loads(path.read_text())
    if saved == drawn:
        return
    differences = []
    for split in sorted(set(saved["split_sizes"]) | set(drawn["split_sizes"])):
        then = (saved["split_sizes"].get(split), saved["data_fingerprint"].get(split))
        now = (drawn["split_sizes"].get(split), drawn["data_fingerprint"].get(split))
        if then != now:
            differences.append(f"{split}: {then[0]} examples, fingerprint {then[1]} then; {now[0]} examples, "
                               f"fingerprint {now[1]} now")
    raise ThreePhaseError(
        f"Cannot resume {str(output)!r}: its finished phases trained on other data ({'; '.join(differences)}). "
        "Resume with the same data (the same data folder or $THREEPHASE_DATA_DIR, the same files, the same library "
        "versions), or start again with --overwrite."
    )


def run(config: RunConfig, data: DatasetDict | None = None, overwrite: bool = False,
        resume: bool = False, evaluate_test: bool = True) -> RunResult:
    """Run ``config`` end to end; return a :class:`RunResult` (``.metrics``, ``.classifier``, ``.output_dir``) and
    write the run record to ``config.output_dir`` if set.

    ``data`` replaces the data that ``config.data`` names: a ``DatasetDict`` (or a ``Dataset`` for train) of your
    own, prepared by :func:`~threephase.user_data.prepare_data` with ``config.data`` (its ``text_column`` and
    ``label_column``, missing splits carved from train, the subset sizes).

    While it trains, the run folder holds ``config.json`` and, in ``phases/``, the body after each finished phase
    and trainer checkpoints. ``resume=True`` continues a run that was killed, from what it kept; it gives the same
    metrics as the run left alone. ``metrics.json`` is written last, so a folder without it is an unfinished run;
    ``resume=True`` on a finished one returns its saved metrics and the classifier saved in it.

    ``evaluate_test=False`` (what :func:`threephase.grid.search.search` runs) drops the test split as soon as the data
    is loaded, so no training or scoring step can see it, and ``metrics`` score the validation split instead
    (``metrics["evaluated_split"]`` says which split was scored).

    >>> from threephase import preset_config, run  # doctest: +SKIP
    >>> result = run(preset_config("cpu", "snips2", output_dir="runs/snips2-3p"))  # doctest: +SKIP
    >>> result.metrics["accuracy"], result.classifier("play some jazz")  # doctest: +SKIP
    """
    config.validate()
    require_extras(config.variant)  # before any data, model or folder: a missing extra is the first thing to fix
    for phase in ("dae", "cl", "ft"):  # a typo in phase 3's settings must not wait until phases 1 and 2 trained
        check_training_args(getattr(config, phase).training_args, f"{phase}.training_args")
    check_max_seq_length(config.model_name_or_path, config.max_seq_length)
    init_processes(config.device)  # under torchrun, every rank waits for rank 0 from here on
    if (config.device or default_device()) == "cpu":
        warn_if_cores_busy()
    output = Path(config.output_dir) if config.output_dir else None
    if output is not None:
        finished = _check_output(config, output, overwrite, resume)
        # Every rank judges the folder before rank 0 writes in it: a rank that came late from the previous command of
        # its process found rank 0's files and refused ("already holds files") under torchrun.
        barrier()
        if finished is not None:
            return RunResult(finished, output_dir=output, device=config.device)
    start = time.perf_counter()
    data = load_data(config.data) if data is None else prepare_data(data, config.data)
    if not evaluate_test:
        data = DatasetDict({split: rows for split, rows in data.items() if split != "test"})
    scored = "test" if evaluate_test else "validation"
    fresh = output is not None and not (output / "config.json").is_file()
    if output is not None:
        drawn = data_record(data)
        if resume:
            check_same_data(output, drawn)
        if is_main_process():
            write_json(output / "config.json", config.to_dict())
            write_json(output / DATA_RECORD, drawn)
    barrier()
    try:
        classifier, phases = train_variant(config, data, workdir=output, resume=resume)
    except Exception:
        # Bad input, or a crash before anything could be resumed: leave nothing behind, or the next run would say
        # "pass --resume" for a folder that holds nothing to resume.
        if fresh and is_main_process() and not _resumable(output):
            shutil.rmtree(output, ignore_errors=True)
        raise
    test = evaluate_split(classifier, data[scored]["text"], data[scored]["label"], config.ft.per_device_eval_batch_size)
    label_names = data["train"].features["label"].names
    metrics = classification_metrics(data[scored]["label"], test["predictions"], label_names)
    metrics.update({
        "evaluated_split": scored,
        "variant": config.variant,
        "dataset": config.data.dataset or config.data.data_dir,
        "model": config.model_name_or_path,
        "seed": config.seed,
        "data_seed": config.data.seed,
        "data_fingerprint": data_fingerprint(data),
        "split_sizes": {split: len(data[split]) for split in data},
        "class_sizes": class_sizes(data["train"]),
        "class_sizes_before_subset": sizes_before_subset(data["train"]),
        "phases": phases,
        "wall_time_s": time.perf_counter() - start,
        "versions": library_versions(),
        "device": device_info(classifier.device),
        "precision": classifier.precision,  # what auto resolved to on this machine
    })
    headline = {k: metrics[k] for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1")}
    classifier.training = {"config": config.to_dict(), "metrics": headline}
    if output is not None and is_main_process():
        classifier.save_pretrained(output / "classifier")
        write_json(output / "metrics.json", metrics)  # last: its presence marks a finished run
        shutil.rmtree(output / "phases", ignore_errors=True)
    barrier()
    return RunResult(metrics, classifier, output)
