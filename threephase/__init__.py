"""threephase: 3-Phase fine-tuning of Transformer text classifiers (López-Ávila & Suárez-Paniagua, EMNLP 2023).

Phase 1 / DAE adapts the body to the data with TSDAE, phase 2 / CL clusters the classes with a Siamese
cosine-similarity loss on pairs after an imbalance-correcting resize, phase 3 / FT trains a 2-layer MLP head.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Each name is imported from its module when first used (PEP 562), so that ``python -m threephase --help`` and
# ``import threephase.cli`` do not wait for torch and transformers.
_HOMES = {
    "MLPHead": "classifier", "ThreePhaseClassifier": "classifier",
    "CLConfig": "config", "DAEConfig": "config", "DataConfig": "config", "FTConfig": "config",
    "ImbalanceConfig": "config", "JointConfig": "config", "RunConfig": "config", "apply_overrides": "config",
    "DATASETS": "data", "load_data": "data", "prepare_data": "user_data", "ThreePhaseError": "errors",
    "train_ft": "finetune", "load_body": "models", "train_cl": "phases", "train_dae": "phases",
    "train_joint": "phases", "VARIANTS": "pipeline", "RunResult": "pipeline", "run": "pipeline",
    "train_variant": "pipeline", "PRESETS": "presets", "preset_config": "presets", "compare": "grid.compare",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'threephase' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


if TYPE_CHECKING:
    from .classifier import MLPHead, ThreePhaseClassifier
    from .config import (CLConfig, DAEConfig, DataConfig, FTConfig, ImbalanceConfig, JointConfig, RunConfig,
                         apply_overrides)
    from .data import DATASETS, load_data
    from .errors import ThreePhaseError
    from .finetune import train_ft
    from .grid.compare import compare
    from .models import load_body
    from .phases import train_cl, train_dae, train_joint
    from .pipeline import VARIANTS, RunResult, run, train_variant
    from .presets import PRESETS, preset_config
    from .user_data import prepare_data
