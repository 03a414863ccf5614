"""scripts/make_book_figures.py: its numbers come from the library, and its files are deterministic."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from threephase.config import FTConfig  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_book_figures.py"


@pytest.fixture(scope="module")
def figures():
    spec = importlib.util.spec_from_file_location("make_book_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schedule_warms_up_inside_the_first_epoch_then_decays_over_the_budget(figures):
    config = FTConfig()
    rates, warmup, per_epoch = figures.schedule_points(config, 3200)
    assert per_epoch == 100 and warmup == 10 and len(rates) == 100 * config.num_train_epochs
    assert rates.argmax() == warmup and rates.max() == pytest.approx(config.learning_rate)
    assert rates[-1] < config.learning_rate / 1000
    assert rates[0] == pytest.approx(config.learning_rate / (warmup + 1))  # the first step trains too


def test_resize_figure_marks_the_worked_example_and_is_deterministic(figures, tmp_path):
    labels = figures.worked_example_labels(1.5, 4.0)
    assert labels == {"A": "1000 → 1000\n$r$ = 1", "B": "300 → 300\n$r$ = 1", "C": "50 → 87\n$r$ = 1.7347",
                      "D": "5 → 15\n$r$ = 3.0680"}
    first = figures.resize_figure(tmp_path).read_bytes()
    assert figures.resize_figure(tmp_path).read_bytes() == first
    assert b"<dc:date>" not in first
