"""Every phase learns from its first step: the warm-up's first learning rate is above 0, a phase of a handful of
steps warns, and phase 3 records how far its validation loss fell below chance (ln K)."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from threephase import CLConfig, FTConfig, load_body, preset_config, run, train_cl
from threephase.finetune import chance_report
from threephase.models import packaged_model_path
from threephase.training import MIN_STEPS, linear_schedule, warmup_then_linear

from conftest import tiny_config


@pytest.mark.parametrize("warmup, total", [(1, 1), (1, 2), (3, 30), (0, 5)])
def test_the_first_step_trains_and_the_schedule_peaks_then_decays(warmup, total):
    rates = [warmup_then_linear(step, warmup, total) for step in range(total)]
    assert rates[0] > 0
    assert all(r > 0 for r in rates)  # the last step too: decay reaches 0 only after it
    assert max(rates) == pytest.approx(1.0) or total <= warmup
    assert rates == sorted(rates[:warmup]) + sorted(rates[warmup:], reverse=True)


def test_the_scheduler_gives_the_optimizer_those_rates():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.5)
    scheduler = linear_schedule(optimizer, warmup=1, total=3)
    seen = []
    for _ in range(3):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.25, 0.5, 0.25])


def test_a_phase_of_one_step_changes_the_body(tiny_data):
    # One batch of pairs and a warm-up of one step: transformers' schedule gave that step learning rate 0.
    body = load_body(packaged_model_path(), max_seq_length=32)
    before = {k: v.clone() for k, v in body.state_dict().items()}
    report = train_cl(body, tiny_data["train"]["text"], tiny_data["train"]["label"],
                      CLConfig(learning_rate=5e-5, num_pairs=16, per_device_train_batch_size=16, warmup_ratio=0.1))
    assert report["steps"] == 1 and report["num_pairs"] == 16
    changed = [k for k, v in body.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "the only optimizer step had learning rate 0"


@pytest.mark.parametrize("frozen", [False, True])
def test_one_step_phases_train_warn_and_record_chance(tiny_data, caplog, frozen):
    # 56 training examples in one batch: phases 2 and 3 get a step or two each, which used to have learning rate 0.
    config = tiny_config("cl-ft", cl__pair_multiplier=0.25, cl__per_device_train_batch_size=64)
    config.ft.per_device_train_batch_size, config.ft.num_train_epochs = 64, 2
    config.ft.freeze_body = frozen
    with caplog.at_level(logging.WARNING, logger="threephase"):
        result = run(config, data=tiny_data)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("Phase 2 / CL has only" in w and "cl.pair_multiplier" in w for w in warnings), warnings
    assert any("Phase 3 / FT has only" in w and "ft.num_train_epochs" in w for w in warnings), warnings
    cl = result.metrics["phases"]["cl"]
    assert 0 < cl["steps"] < MIN_STEPS
    ft = result.metrics["phases"]["ft"]
    assert ft["chance_loss"] == pytest.approx(math.log(7))
    kept = next(e for e in ft["epochs"] if e["epoch"] == ft["best_epoch"])
    assert ft["validation_loss_below_chance"] == pytest.approx(math.log(7) - kept["validation_loss"])


def _kept(loss: float, accuracy: float, macro_f1: float) -> dict:
    return {"best_epoch": 3, "epochs": [{"epoch": 3, "validation_loss": loss, "validation_accuracy": accuracy,
                                         "validation_macro_f1": macro_f1}]}


def _warnings(caplog, level=logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_an_under_confident_head_that_ranks_well_is_not_called_unlearned(caplog):
    # notebook 04's frozen-body run: a loss near ln 7 at 85.7% validation accuracy, far above chance (1/7)
    config = FTConfig(freeze_body=True)
    with caplog.at_level(logging.INFO, logger="threephase"):
        chance_report(_kept(0.95 * math.log(7), 0.857, 0.85), 7, config)
    assert _warnings(caplog) == []


def test_an_over_confident_head_is_not_called_below_chance(caplog):
    # the full sst5 under the cpu preset: loss 2.120 > ln 5 = 1.609 at validation macro-F1 0.465 (chance 0.2)
    config = preset_config("cpu", "sst5").ft
    with caplog.at_level(logging.INFO, logger="threephase"):
        report = chance_report(_kept(2.120, 0.494, 0.465), 5, config)
    assert _warnings(caplog) == []
    [note] = _warnings(caplog, logging.INFO)
    assert "above chance" in note and "over-confident" in note and "below" not in note
    assert report["validation_loss_below_chance"] == pytest.approx(math.log(5) - 2.120)


@pytest.mark.parametrize("preset", ["paper", "cpu"])
def test_an_unlearned_head_is_warned_about_with_only_the_settings_that_are_off(caplog, preset):
    config = preset_config(preset, "snips2").ft
    with caplog.at_level(logging.WARNING, logger="threephase"):
        chance_report(_kept(2.1, 0.16, 0.15), 7, config)
    [warning] = _warnings(caplog)
    assert "hardly learned" in warning and "above chance (ln 7" in warning
    assert f"validation {config.metric_for_best_model} 0.1" in warning
    assert ("ft.class_weights=balanced" in warning) == (config.class_weights != "balanced")
    assert ("ft.metric_for_best_model=macro_f1" in warning) == (config.metric_for_best_model != "macro_f1")


@pytest.mark.parametrize("off", ["1", ""])
def test_tqdm_disable_leaves_no_progress_bar_and_no_log_lines(tiny_data, capsys, monkeypatch, off):
    # The book build sets TQDM_DISABLE for its kernels: a saved bar is frozen where the run ended ("Epoch 8/20"),
    # and the trainer, without its bar, would print every logged loss instead (28 to 56 lines on a notebook page).
    monkeypatch.setenv("TQDM_DISABLE", off)
    body = load_body(packaged_model_path(), max_seq_length=32)
    capsys.readouterr()  # loading bars are the Hub libraries' own (the book turns them off with their settings)
    report = train_cl(body, tiny_data["train"]["text"], tiny_data["train"]["label"],
                      CLConfig(learning_rate=5e-5, num_pairs=64, per_device_train_batch_size=16), logging_steps=1)
    out = capsys.readouterr()
    # the trainer's own bar and log lines, and the model card's "widget examples" bar, are the phases' to turn off
    printed = out.out + out.err
    assert len(report["loss_history"]) >= 4  # the losses are kept in the report either way
    if off:
        assert "'loss'" not in printed and "it/s" not in printed and "%|" not in printed, printed[-500:]
        assert "widget examples" not in printed
    else:
        assert "%|" in printed  # the bar a terminal shows (the check above can see one)
