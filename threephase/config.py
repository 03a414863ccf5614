"""Settings: one dataclass per concern, a run config that holds them, JSON round-trip and overrides.

Names follow Hugging Face's ``TrainingArguments`` where one exists (``learning_rate``, ``num_train_epochs``,
``per_device_train_batch_size``, ``seed``, ``output_dir``). The named presets live in :mod:`threephase.presets`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ThreePhaseError
from .precision import check_precision

VARIANTS = ("three-phase", "joint", "dae-ft", "cl-ft", "ft", "extra-imb", "no-imb", "logreg", "setfit")
SECTIONS = ("data", "dae", "imbalance", "cl", "joint", "ft", "logreg")
# Settings that hold a dict of their own: ``--set dae.training_args='{"bf16": true}'`` replaces the whole dict,
# ``--set dae.training_args.bf16=true`` sets one key.
DICT_SETTINGS = ("dae.training_args", "cl.training_args", "ft.training_args")


@dataclass
class DataConfig:
    """Which data to use and how much of it.

    ``dataset`` names one of the paper's datasets (loaded from the Hub, or from ``data_dir`` /
    ``$THREEPHASE_DATA_DIR`` when set); ``data_dir`` alone may also point at your own CSV folder or file.
    The ``*_per_class`` settings draw the same number of examples of each class (few-shot); the ``max_*_samples``
    settings draw a stratified subset that keeps the class proportions, with at least ``min_per_class`` per class.
    ``imbalance_factor`` = ρ reshapes the training split into a long tail whose sizes fall geometrically by ρ from
    the largest class to the smallest (:func:`~threephase.sampling.long_tail`); which class gets which size is drawn
    with ``seed``, and ``max_train_samples`` then sizes the tail itself (no proportional draw after it, which would
    top the small classes up and bend the ratio). ``seed`` drives the
    split and subset draws only, and is the same for every training seed by default, so that a std over training
    seeds measures training variance on one data draw.
    """

    dataset: str | None = "snips2"
    data_dir: str | None = None
    seed: int = 0
    text_column: str = "text"
    label_column: str = "label"
    validation_fraction: float = 0.2
    imbalance_factor: float | None = None  # reshape train into a long tail: largest / smallest class ≈ this
    min_per_class: int = 8  # the floor per class of a max_*_samples draw, so that every class can be paired
    # Texts without labels for phase 1 (and Joint's DAE part): a .txt file (one text per line), a .csv / .jsonl
    # file with the text column, or "train": every training text left out of the labelled subset.
    unlabelled: str | None = None
    max_unlabelled_samples: int | None = None  # a seeded sample of at most this many unlabelled texts
    train_per_class: int | None = None
    max_train_samples: int | None = None
    validation_per_class: int | None = None
    max_validation_samples: int | None = None
    test_per_class: int | None = None
    max_test_samples: int | None = None


@dataclass
class DAEConfig:
    """Phase 1: TSDAE on the training texts.

    ``num_train_epochs`` is the paper's "DAE epochs": how many times the text list is repeated, each time with
    fresh noise. ``deletion_ratio`` is the fraction of words deleted (not kept).
    """

    learning_rate: float = 1e-5
    num_train_epochs: int = 4
    per_device_train_batch_size: int = 32
    deletion_ratio: float = 0.6
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    training_args: dict[str, Any] = field(default_factory=dict)  # passed unchanged to TrainingArguments


@dataclass
class ImbalanceConfig:
    """The imbalance-correcting resize before phase 2 (eq. 4-6)."""

    min_ratio: float = 1.5
    max_ratio: float = 4.0
    whole_copies: bool = False
    stop_word_noise: bool = True


@dataclass
class CLConfig:
    """Phase 2: Siamese cosine-similarity loss on class pairs, one epoch over the pairs.

    Pairs = ``pair_multiplier`` × ⌊log2 K⌋ × resized examples (the paper's "CL epochs"), unless ``num_pairs`` sets
    the count itself: variants that resize differently then train the same number of steps.
    """

    learning_rate: float = 1e-5
    pair_multiplier: float = 12
    num_pairs: int | None = None
    per_device_train_batch_size: int = 32
    balance_scores: bool = False
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    training_args: dict[str, Any] = field(default_factory=dict)  # passed unchanged to TrainingArguments


@dataclass
class JointConfig:
    """Joint: the loss is ``dae_weight`` × L_DAE + L_CL (eq. 10 has ``dae_weight`` = 1).

    The optimizer, learning rate and batch size are phase 2's (``cl``); the noise is phase 1's (``dae``)."""

    dae_weight: float = 1.0


@dataclass
class FTConfig:
    """Phase 3: the 2-layer MLP head on the pooled embedding, with early stopping on validation."""

    learning_rate: float = 1e-5
    head_learning_rate: float | None = None  # None: the same as learning_rate
    num_train_epochs: int = 70
    min_epochs: int = 5
    patience: int = 3
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 64
    head_hidden_size: int = 100
    activation: str | None = "relu"
    dropout: float = 0.3
    freeze_body: bool = False
    class_weights: str | None = None  # "balanced": cross-entropy weighted by inverse class frequency
    metric_for_best_model: str = "accuracy"  # or "macro_f1": what early stopping maximises on validation
    adam_epsilon: float = 2e-5
    warmup_ratio: float = 0.1  # a fraction of the first epoch: the learning rate peaks within epoch 1
    weight_decay: float = 0.0
    training_args: dict[str, Any] = field(default_factory=dict)  # passed unchanged to TrainingArguments


@dataclass
class LogRegConfig:
    """The logistic regression of the baselines ``logreg`` and ``setfit``: ``C`` is scikit-learn's inverse
    regularisation strength. None chooses it on validation from a small grid (as phase 3 chooses its epoch there);
    a number fixes it, e.g. the best of ``python -m threephase search``."""

    C: float | None = None


@dataclass
class RunConfig:
    """Everything one run needs; ``RunConfig.from_dict(json.load(f))`` restores a saved ``config.json``."""

    model_name_or_path: str = "sentence-transformers/all-MiniLM-L12-v2"
    variant: str = "three-phase"
    preset: str = "paper"
    seed: int = 42
    output_dir: str | None = None
    pooling: str | None = None
    max_seq_length: int | None = None
    device: str | None = None
    # auto, fp32, bf16 or fp16 for every phase, Joint, the baselines' encoding and predict (threephase.precision);
    # auto: bf16 where the GPU or CPU computes it fast, else fp32. Weights stay fp32.
    precision: str = "auto"
    logging_steps: int = 10
    save_steps: int = 500  # a resumable checkpoint inside a phase every save_steps optimizer steps (0: none)
    data: DataConfig = field(default_factory=DataConfig)
    dae: DAEConfig = field(default_factory=DAEConfig)
    imbalance: ImbalanceConfig = field(default_factory=ImbalanceConfig)
    cl: CLConfig = field(default_factory=CLConfig)
    joint: JointConfig = field(default_factory=JointConfig)
    ft: FTConfig = field(default_factory=FTConfig)
    logreg: LogRegConfig = field(default_factory=LogRegConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        return apply_overrides(cls(), values)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> RunConfig:
        return apply_overrides(cls(), read_json_overrides(path))

    def validate(self) -> RunConfig:
        """Raise :class:`ThreePhaseError` for a setting no run can use; return self."""
        if self.variant not in VARIANTS:
            raise ThreePhaseError(
                f"Unknown variant {self.variant!r}. Choose one of: {', '.join(VARIANTS)}."
            )
        check_precision(self.precision)
        if not 0.0 <= self.dae.deletion_ratio < 1.0:
            raise ThreePhaseError(
                f"dae.deletion_ratio must lie in [0, 1) (the fraction of words deleted), got {self.dae.deletion_ratio}."
            )
        if self.imbalance.min_ratio <= 0 or self.imbalance.max_ratio <= 0:
            raise ThreePhaseError(
                f"Resize ratios must be positive, got min_ratio={self.imbalance.min_ratio}, "
                f"max_ratio={self.imbalance.max_ratio}: pass values > 0 (defaults 1.5 and 4)."
            )
        if self.imbalance.min_ratio > self.imbalance.max_ratio:
            raise ThreePhaseError(
                f"imbalance.min_ratio ({self.imbalance.min_ratio}) is larger than imbalance.max_ratio "
                f"({self.imbalance.max_ratio}): pass min_ratio <= max_ratio."
            )
        if self.data.imbalance_factor is not None and self.data.imbalance_factor < 1:
            raise ThreePhaseError(
                f"data.imbalance_factor must be at least 1 (the largest / smallest class ratio), got "
                f"{self.data.imbalance_factor}; use null for the data's own proportions."
            )
        check_data_settings(self.data)
        if self.data.max_unlabelled_samples is not None and self.data.max_unlabelled_samples < 1:
            raise ThreePhaseError(
                f"data.max_unlabelled_samples must be at least 1, got {self.data.max_unlabelled_samples}; use null "
                "for every unlabelled text."
            )
        if not 0.0 < self.data.validation_fraction < 1.0:
            raise ThreePhaseError(
                f"data.validation_fraction must lie in (0, 1), got {self.data.validation_fraction}."
            )
        for phase in ("dae", "cl", "ft"):
            settings = getattr(self, phase)
            if settings.learning_rate <= 0:
                raise ThreePhaseError(f"{phase}.learning_rate must be positive, got {settings.learning_rate}.")
            if settings.per_device_train_batch_size < 1:
                raise ThreePhaseError(f"{phase}.per_device_train_batch_size must be at least 1.")
            if not 0.0 <= settings.warmup_ratio < 1.0:
                raise ThreePhaseError(
                    f"{phase}.warmup_ratio must lie in [0, 1) (the fraction of steps spent warming up the "
                    f"learning rate), got {settings.warmup_ratio}."
                )
        for name in DICT_SETTINGS:
            section, _, key = name.partition(".")
            if not isinstance(getattr(getattr(self, section), key), dict):
                raise ThreePhaseError(
                    f"{name} must be a JSON object of TrainingArguments settings, e.g. "
                    f"--set '{name}={{\"gradient_accumulation_steps\": 2}}'."
                )
        if self.cl.num_pairs is not None and self.cl.num_pairs < 1:
            raise ThreePhaseError(
                f"cl.num_pairs must be at least 1, got {self.cl.num_pairs}; use null for pair_multiplier's count."
            )
        if self.logreg.C is not None and self.logreg.C <= 0:
            raise ThreePhaseError(
                f"logreg.C must be positive (scikit-learn's inverse regularisation), got {self.logreg.C}; use null to "
                "choose it on validation."
            )
        if self.save_steps < 0:
            raise ThreePhaseError(f"save_steps must be 0 (no checkpoints inside a phase) or positive, got {self.save_steps}.")
        gpu = re.fullmatch(r"cuda:(\d+)", self.device or "")
        if gpu and int(gpu.group(1)) != 0:
            raise ThreePhaseError(
                f"device {self.device!r}: the trainer places the model on the first visible GPU itself, so a GPU index "
                f"cannot be honoured here. Select the GPU with CUDA_VISIBLE_DEVICES={gpu.group(1)} and pass --device cuda."
            )
        if (self.device or "").startswith("cuda"):
            import torch  # on use: reading and checking settings needs no training stack

            if not torch.cuda.is_available():
                raise ThreePhaseError(
                    f"device {self.device!r}, but this machine has no usable CUDA GPU (torch {torch.__version__}, "
                    f"CUDA build: {torch.version.cuda or 'none'}): pass --device cpu (or leave --device out: a GPU "
                    "is used when there is one), or install a CUDA build of PyTorch on a machine with a GPU."
                )
        if self.ft.num_train_epochs < 1:
            raise ThreePhaseError(
                f"ft.num_train_epochs must be at least 1, got {self.ft.num_train_epochs}: with no epoch the head keeps "
                "its random weights and the metrics mean nothing. To skip training the body, set ft.freeze_body=true."
            )
        if self.data.text_column == self.data.label_column:
            raise ThreePhaseError(
                f"data.text_column and data.label_column are both {self.data.text_column!r}: the label cannot be the "
                "text. Pass the text column with --text-column and the label column with --label-column."
            )
        if self.ft.class_weights not in (None, "balanced"):
            raise ThreePhaseError(
                f"Unknown ft.class_weights {self.ft.class_weights!r}: use null (plain cross-entropy) or 'balanced' "
                "(each class weighted by the inverse of its frequency in the training split)."
            )
        if self.ft.metric_for_best_model not in ("accuracy", "macro_f1"):
            raise ThreePhaseError(
                f"Unknown ft.metric_for_best_model {self.ft.metric_for_best_model!r}: use 'accuracy' (the paper's) or "
                "'macro_f1' (better on imbalanced validation data)."
            )
        if self.ft.activation not in (None, "relu", "gelu", "tanh"):
            raise ThreePhaseError(
                f"Unknown ft.activation {self.ft.activation!r}: use 'relu', 'gelu', 'tanh' or null (no activation)."
            )
        return self


def _coerce(value: Any, current: Any, key: str) -> Any:
    """Turn a command-line string into the type of the setting it replaces."""
    if not isinstance(value, str):
        return value
    if value.lower() in ("none", "null"):
        return None
    if isinstance(current, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        if current is None:
            return value
        raise ThreePhaseError(f"Cannot read {value!r} as a value for {key!r}: give a number, true/false or null.")


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return a copy of ``config`` with ``overrides`` applied.

    Keys are either nested (``{"ft": {"learning_rate": 2e-5}}``) or dotted (``{"ft.learning_rate": "2e-5"}``);
    string values are parsed as JSON so that command-line text becomes numbers and booleans.
    """
    config = dataclasses.replace(config)
    for section in SECTIONS:
        setattr(config, section, dataclasses.replace(getattr(config, section)))
    for name in DICT_SETTINGS:  # copies, so the caller's config never changes
        section, attr = name.split(".")
        setattr(getattr(config, section), attr, dict(getattr(getattr(config, section), attr)))
    for key, value in _flatten(overrides).items():
        parts = key.split(".")
        dict_setting = next((n for n in DICT_SETTINGS if key.startswith(f"{n}.")), None)
        if dict_setting:  # one key inside a dict setting
            section, attr = dict_setting.split(".")
            getattr(getattr(config, section), attr)[key[len(dict_setting) + 1:]] = _coerce(value, None, key)
            continue
        target: Any = config
        for part in parts[:-1]:
            if not dataclasses.is_dataclass(getattr(target, part, None)):
                raise ThreePhaseError(f"Unknown setting {key!r}. Known settings: {', '.join(setting_names())}.")
            target = getattr(target, part)
        name = parts[-1]
        if name not in {f.name for f in fields(target)} or dataclasses.is_dataclass(getattr(target, name)):
            raise ThreePhaseError(f"Unknown setting {key!r}. Known settings: {', '.join(setting_names())}.")
        setattr(target, name, _coerce(value, getattr(target, name), key))
    return config


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and f"{prefix}{key}" not in DICT_SETTINGS:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_settings(saved: dict[str, Any], wanted: dict[str, Any], ignore: tuple[str, ...] = ("output_dir", "device"),
                     prefix: str = "") -> str:
    """The settings that differ between two nested dicts of settings, as "name: then, now" ("" if none).

    Keys in ``ignore`` (at any depth) say where a run ran, not what it computed."""
    differences = []
    for key in sorted(set(saved) | set(wanted)):
        old, new = saved.get(key), wanted.get(key)
        if key in ignore:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            nested = changed_settings(old, new, ignore, f"{prefix}{key}.")
            differences += [nested] if nested else []
        elif old != new:
            differences.append(f"{prefix}{key}: {old!r} then, {new!r} now")
    return ", ".join(differences)


def setting_names() -> list[str]:
    """Every dotted setting name, for help texts and error messages."""
    return sorted(_flatten(RunConfig().to_dict()))


def parse_set_options(items: list[str]) -> dict[str, str]:
    """Read ``key=value`` strings from the command line."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ThreePhaseError(f"Cannot read --set {item!r}: write it as KEY=VALUE, e.g. --set ft.learning_rate=2e-5.")
        overrides[key.strip()] = value.strip()
    return overrides


def read_json_overrides(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ThreePhaseError(f"Config file {str(path)!r} does not exist: pass the path of a JSON file.")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ThreePhaseError(f"Config file {str(path)!r} is not valid JSON ({err}): fix the file.") from None
    if not isinstance(values, dict):
        raise ThreePhaseError(f"Config file {str(path)!r} must hold a JSON object of settings.")
    return values


def check_data_settings(config: DataConfig) -> None:
    """Refuse data settings that contradict each other (:meth:`RunConfig.validate` calls this before any folder
    exists; :func:`threephase.data.load_data` too, for data loaded without a run)."""
    if config.imbalance_factor is not None and config.train_per_class is not None:
        raise ThreePhaseError(
            f"data.imbalance_factor={config.imbalance_factor} and data.train_per_class={config.train_per_class} "
            "cancel each other: the long tail is drawn first, then train_per_class takes the same number of every "
            "class, which makes the classes balanced again. For a long-tailed subset use data.max_train_samples "
            "(it sizes the tail) with data.imbalance_factor, or drop one of the two settings."
        )
