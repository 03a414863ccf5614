"""threephase: 3-Phase fine-tuning of Transformer text classifiers (López-Ávila & Suárez-Paniagua, EMNLP 2023).

Phase 1 / DAE adapts the body to the data with TSDAE, phase 2 / CL clusters the classes with a Siamese
cosine-similarity loss on pairs after an imbalance-correcting resize, phase 3 / FT trains a 2-layer MLP head.
"""

from .classifier import MLPHead, ThreePhaseClassifier
from .config import (CLConfig, DAEConfig, DataConfig, FTConfig, ImbalanceConfig, JointConfig, RunConfig,
                     apply_overrides)
from .data import DATASETS, load_data
from .user_data import prepare_data
from .errors import ThreePhaseError
from .finetune import train_ft
from .models import load_body
from .phases import train_cl, train_dae, train_joint
from .pipeline import VARIANTS, RunResult, run, train_variant
from .presets import PRESETS, preset_config

__version__ = "0.1.0"

__all__ = [
    "CLConfig", "DAEConfig", "DATASETS", "DataConfig", "FTConfig", "ImbalanceConfig", "JointConfig", "MLPHead", "PRESETS",
    "RunConfig", "RunResult", "ThreePhaseClassifier", "ThreePhaseError", "VARIANTS", "apply_overrides", "load_body",
    "load_data", "prepare_data", "preset_config", "run", "train_cl", "train_dae", "train_ft", "train_joint",
    "train_variant",
]
