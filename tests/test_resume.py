"""A run killed with SIGKILL in the middle of phase 2, then resumed, ends with the metrics of the run left alone."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

SETTINGS = ["data.train_per_class=8", "data.validation_per_class=4", "data.test_per_class=6", "max_seq_length=16",
            "save_steps=2", "ft.num_train_epochs=2", "ft.min_epochs=1", "ft.patience=1"]


def command(data_dir, output, *extra):
    sets = [arg for setting in SETTINGS for arg in ("--set", setting)]
    return [sys.executable, "-m", "threephase", "run", "--dataset", "snips2", "--data-dir", data_dir, "--preset", "cpu",
            "--variant", "three-phase", "--seed", "3", "--output", str(output), *sets, *extra]


def env():
    return dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"), HF_HUB_OFFLINE="1")


@pytest.fixture(scope="module")
def left_alone(tmp_path_factory, data_dir):
    output = tmp_path_factory.mktemp("alone") / "run"
    done = subprocess.run(command(data_dir, output), env=env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (output / "phases").exists(), "a finished run keeps no checkpoints"
    return output, json.loads((output / "metrics.json").read_text())


def test_killed_in_phase2_then_resumed_gives_the_same_metrics(tmp_path, data_dir, left_alone, capsys):
    from threephase.cli import main
    alone_dir, left_alone = left_alone
    output = tmp_path / "run"
    process = subprocess.Popen(command(data_dir, output), env=env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not list(output.glob("phases/cl/checkpoint-*/threephase_state.json")):
        assert process.poll() is None, "the run ended before phase 2 wrote a checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (output / "metrics.json").exists()
    assert (output / "phases" / "dae" / "report.json").is_file() and not (output / "phases" / "cl" / "report.json").exists()

    # The refusals stop before anything trains: the same command line, in this process (a new one costs 10 CPU s).
    capsys.readouterr()
    assert main(command(data_dir, output)[3:]) == 2
    assert "--resume" in capsys.readouterr().err  # a plain rerun says how to continue

    resumed = subprocess.run(command(data_dir, output, "--resume"), env=env(), capture_output=True, text=True,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["phases"]["cl"]["resumed_from_step"] > 0
    for key in ("accuracy", "macro_f1", "confusion_matrix", "data_fingerprint"):
        assert metrics[key] == left_alone[key], key
    for name in ("head.safetensors", "model.safetensors"):  # the body sits at the classifier folder's root
        assert (output / "classifier" / name).read_bytes() == (alone_dir / "classifier" / name).read_bytes(), name
    for phase in ("dae", "ft"):
        assert metrics["phases"][phase]["loss_history"] == left_alone["phases"][phase]["loss_history"], phase
    # Phase 2's log up to the checkpoint is restored; the trainer's first log after a resume averages the loss
    # over the steps since the resume only, so later entries may differ in "loss" although the weights do not.
    resumed_at = metrics["phases"]["cl"]["resumed_from_step"]
    cut = lambda history: [e for e in history if e["step"] <= resumed_at]  # noqa: E731
    assert cut(metrics["phases"]["cl"]["loss_history"]) == cut(left_alone["phases"]["cl"]["loss_history"])
    assert metrics["phases"]["cl"]["steps"] == left_alone["phases"]["cl"]["steps"]

    assert main(command(data_dir, output, "--resume", "--set", "cl.learning_rate=1e-3")[3:]) == 2
    assert "cl.learning_rate" in capsys.readouterr().err


def test_resume_on_other_data_is_refused(tmp_path, data_dir, monkeypatch):
    """The data's fingerprint is kept from the start: phases 2-3 must not resume on another draw than phase 1's."""
    import threephase.pipeline as pipeline
    from threephase.data import load_data
    from threephase.errors import ThreePhaseError

    from conftest import tiny_config

    class Killed(Exception):
        pass

    def killed(config, data, workdir, resume):
        report = workdir / "phases" / "dae" / pipeline.PHASE_REPORT  # phase 1 finished on this data
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text("{}")
        raise Killed  # then the run dies in phase 2

    monkeypatch.setattr(pipeline, "train_variant", killed)
    config = tiny_config("three-phase", output_dir=str(tmp_path / "run"))
    first = load_data(dataset="snips2", data_dir=data_dir, train_per_class=8, validation_per_class=4,
                      test_per_class=6, seed=0)
    with pytest.raises(Killed):
        pipeline.run(config, data=first)
    other = load_data(dataset="snips2", data_dir=data_dir, train_per_class=8, validation_per_class=4,
                      test_per_class=6, seed=1)
    with pytest.raises(ThreePhaseError, match=r"other data \(test: 42 examples, fingerprint \w+ then; 42 examples.*"
                                              r"--overwrite"):
        pipeline.run(config, data=other, resume=True)
    with pytest.raises(Killed):  # the same data resumes
        pipeline.run(config, data=first, resume=True)
