"""Shared fixtures: the offline data and model, and small configs that run in seconds on a CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Tests never reach the Hub, and keep caches inside the checkout.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HOME", str(REPO / ".cache" / "huggingface"))
os.environ.setdefault("MPLCONFIGDIR", str(REPO / ".cache" / "matplotlib"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (the `-n` of pyproject's addopts) each worker, and every process its tests start, gets an equal
# share of the cores: more threads than cores slow every process many times over. Set before torch is imported.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = share

from threephase import preset_config  # noqa: E402
from threephase.data import DATA_DIR_ENV, load_data  # noqa: E402


@pytest.fixture(scope="session")
def data_dir() -> str:
    path = os.environ.get(DATA_DIR_ENV) or str(REPO.parent / "shared" / "data")
    if not Path(path, "snips2", "train.csv").is_file():
        pytest.fail(f"The offline data is missing: set ${DATA_DIR_ENV} to a folder holding snips2/train.csv.")
    return path


@pytest.fixture(scope="session")
def tiny_data(data_dir):
    """snips2 with 8 training, 4 validation and 6 test examples per class."""
    return load_data(dataset="snips2", data_dir=data_dir, train_per_class=8, validation_per_class=4,
                     test_per_class=6, seed=0)


def tiny_config(variant: str = "three-phase", seed: int = 0, **overrides):
    """The cpu preset shrunk to a few optimizer steps per phase. 16 tokens hold most of a snips2 text (median 11, 90%
    under 18) and cost a fifth less CPU than 32 in every run made from this config."""
    config = preset_config("cpu", "snips2", variant=variant, seed=seed, max_seq_length=16)
    config.dae.per_device_train_batch_size = config.cl.per_device_train_batch_size = 16
    config.ft.num_train_epochs, config.ft.min_epochs, config.ft.patience = 2, 1, 1
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        setattr(getattr(config, section) if name else config, name or section, value)
    return config


# The test files that take longest (each over half a minute on 2 cores), in the order to start them. Under
# pytest-xdist's --dist loadfile a file runs whole on one worker, in collection order: started last, the longest
# would leave the other worker idle at the end; started first, the short files fill in around them.
LONG_FILES = ("test_variants.py", "test_compare.py", "test_ddp.py", "test_resume.py", "test_experiment.py",
              "test_reproduce.py", "test_pipeline.py", "test_readme.py", "test_executors.py", "test_notebooks.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return LONG_FILES.index(name) if name in LONG_FILES else len(LONG_FILES)

    items.sort(key=rank)  # stable: within a file, and among the other files, the order stays
