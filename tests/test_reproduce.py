"""The reproduction driver: the grid, the paper's numbers, skip / overwrite / resume on real (tiny) runs in this
process, in worker processes (--jobs) and through papermill (--notebooks), the aggregate tables (mean ± std, paper
number, difference; Markdown, CSV and PNG), and a run from an installed wheel outside the checkout."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

from threephase.grid import cells, reproduce, tables
from threephase.cli import main
from threephase.errors import ThreePhaseError

REPO = Path(__file__).resolve().parents[1]

TINY = ["--set", "data.train_per_class=4", "--set", "data.validation_per_class=2", "--set", "data.test_per_class=3",
        "--set", "ft.num_train_epochs=1", "--set", "ft.min_epochs=1", "--set", "max_seq_length=16"]


def test_grid_follows_the_paper():
    table3 = reproduce.grid(3, ["sst2", "imdb"], seeds=2, preset="paper")
    models = {(r["dataset"], r["model"]) for r in table3}
    assert models == {("sst2", "FacebookAI/roberta-base"), ("sst2", "sentence-transformers/all-MiniLM-L12-v2"),
                      ("imdb", "FacebookAI/roberta-base")}
    assert {r["variant"] for r in table3} == {"three-phase", "joint", "ft"} and {r["seed"] for r in table3} == {0, 1}
    table4 = reproduce.grid(4, ["snips2", "sst5"], seeds="0,4", preset="paper")
    assert len(table4) == 2 * 7 * 2
    assert {(r["dataset"], r["model"]) for r in table4} == {
        ("snips2", "sentence-transformers/all-MiniLM-L12-v2"), ("sst5", "FacebookAI/roberta-base")}
    cpu = reproduce.grid(4, ["snips2"], variants=["ft"], seeds=1, preset="cpu")
    assert cpu == [{"dataset": "snips2", "model": "sentence-transformers/all-MiniLM-L6-v2", "variant": "ft",
                    "seed": 0, "preset": "cpu"}]
    assert reproduce.parse_seeds("0,1,4") == [0, 1, 4]
    assert reproduce.parse_seeds("0,") == [0]
    with pytest.raises(ThreePhaseError, match="for seed 0 alone write --seeds 0,"):  # not "at least one seed"
        reproduce.parse_seeds("0")
    with pytest.raises(ThreePhaseError, match="--seeds"):
        reproduce.parse_seeds("two")
    with pytest.raises(ThreePhaseError, match="variant"):
        reproduce.grid(4, ["snips2"], variants=["nope"])


def test_paper_numbers():
    assert tables.paper_accuracy(4, "snips2", "any", "no-imb") == 97.85
    assert tables.paper_accuracy(4, "imdb", "any", "extra-imb") == 97.00
    assert tables.paper_accuracy(3, "sst5", "FacebookAI/roberta-base", "joint") == 53.88
    assert tables.paper_accuracy(3, "sst2", "sentence-transformers/all-MiniLM-L6-v2", "ft") == 88.21
    assert tables.paper_accuracy(3, "imdb", "all-MiniLM-L12-v2", "ft") is None
    assert tables.paper_accuracy(3, "snips2", "roberta-base", "dae-ft") is None


def test_aggregate_of_records():
    records = [{"dataset": "snips2", "model": "m/all-MiniLM-L6-v2", "variant": v, "seed": s, "accuracy": a}
               for v, s, a in [("ft", 0, 0.90), ("ft", 1, 0.94), ("three-phase", 0, 0.97), ("joint", 0, 0.5)]]
    df = tables.aggregate(records, table=4)
    assert list(df["variant"]) == ["three-phase", "joint", "ft"]  # the paper's order
    ft = df.set_index("variant").loc["ft"]
    assert ft["n"] == 2 and ft["mean"] == pytest.approx(92.0) and ft["std"] == pytest.approx(math.sqrt(8))
    assert ft["paper"] == 93.86 and ft["diff"] == pytest.approx(92.0 - 93.86)
    assert math.isnan(df.set_index("variant").loc["three-phase", "std"])
    text = tables.to_markdown(df)
    rows = [line.split(" | ")[0].strip("| ") for line in text.splitlines() if line.startswith("| ")][2:]
    assert rows == ["3-Phase", "Joint", "FT"]  # variants as rows, in the paper's order
    # not the paper's preset and model: the paper's number and Δ stay out of the table (as out of the figure)
    assert "| FT | 92.00 ± 2.83 |  |" in text and "93.86" not in text and "| Δ |" not in text
    assert "| 3-Phase | 97.00 ± – |" in text and "appears only beside runs of the `paper` preset" in text
    paper_run = [r | {"preset": "paper", "model": "sentence-transformers/all-MiniLM-L12-v2"} for r in records]
    text = tables.to_markdown(tables.aggregate(paper_run, table=4))
    assert "| FT | 92.00 ± 2.83 | 93.86 | -1.86 |  |" in text and "appears only" not in text
    assert list(tables.aggregate(records, table=3)["variant"]) == ["three-phase", "joint", "ft"]


def test_missing_notebook_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cells, "NOTEBOOK", "no_such_notebook.ipynb")
    with pytest.raises(ThreePhaseError, match="wheel.*drop --notebooks"):
        cells.notebook_path()
    code = main(["reproduce", "--table", "4", "--datasets", "snips2", "--variants", "ft", "--seeds", "1",
                 "--out", str(tmp_path), "--notebooks"])
    assert code == 2 and "drop --notebooks" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_workers_get_one_gpu_each_or_a_share_of_the_cores(monkeypatch):
    environ = {"PATH": "/bin"}
    assert [cells.worker_env(k, 4, ["2", "5"], environ)["CUDA_VISIBLE_DEVICES"] for k in range(4)] == \
        ["2", "5", "2", "5"]
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    cpu = cells.worker_env(0, 2, [], environ)
    assert "CUDA_VISIBLE_DEVICES" not in cpu and cpu["OMP_NUM_THREADS"] == cpu["MKL_NUM_THREADS"] == "4"
    assert cells.worker_env(0, 2, [], {"OMP_NUM_THREADS": "1"})["OMP_NUM_THREADS"] == "1"  # the user's choice
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,7")
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    assert cells.visible_gpus() == ["3", "7"]
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    assert cells.visible_gpus() == []  # one GPU: every worker shares it


def test_unknown_dataset_fails_before_any_run(tmp_path, capsys, monkeypatch, data_dir):
    monkeypatch.setenv("THREEPHASE_DATA_DIR", data_dir)
    code = main(["reproduce", "--table", "4", "--datasets", "snipz", "--seeds", "1", "--out", str(tmp_path)])
    assert code == 2 and "Unknown dataset 'snipz'" in capsys.readouterr().err
    code = main(["reproduce", "--table", "4", "--datasets", "snips", "--seeds", "1", "--out", str(tmp_path)])
    assert code == 2 and "no 'snips' folder" in capsys.readouterr().err  # not in the local copies
    assert not any(tmp_path.iterdir())


def test_bad_setting_fails_before_any_run(tmp_path, capsys):
    code = main(["reproduce", "--table", "4", "--datasets", "snips2", "--variants", "ft", "--seeds", "1",
                 "--out", str(tmp_path), "--set", "ft.no_such_setting=1"])
    assert code == 2 and "Unknown setting" in capsys.readouterr().err
    code = main(["reproduce", "--table", "4", "--datasets", "snips2", "--variants", "ft", "--seeds", "1",
                 "--out", str(tmp_path), "--jobs", "0"])
    assert code == 2 and "--jobs 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_driver_skips_overwrites_and_aggregates(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("THREEPHASE_DATA_DIR", data_dir)  # the worker processes inherit the environment
    out = tmp_path / "table4"
    base = ["reproduce", "--table", "4", "--datasets", "snips2", "--variants", "ft", "--preset", "cpu",
            "--out", str(out), *TINY]
    from threephase import pipeline

    def not_here(*args, **kwargs):
        raise AssertionError("--jobs 2 ran a cell in the driver's own process")

    monkeypatch.setattr(pipeline, "run", not_here)  # the worker processes do not see this
    assert main([*base, "--seeds", "2", "--jobs", "2"]) == 0
    monkeypatch.undo()
    monkeypatch.setenv("THREEPHASE_DATA_DIR", data_dir)
    names = [f"snips2__all-MiniLM-L6-v2__ft__seed{s}" for s in (0, 1)]
    results = [out / "runs" / name / "results.json" for name in names]
    for name, path in zip(names, results):
        assert "Phase 3: FT" in (out / "logs" / f"{name}.log").read_text()
        assert (path.parent / "classifier" / "head.safetensors").is_file()
        record = json.loads(path.read_text())
        assert record["variant"] == "ft" and record["parameters"]["overrides"]["data.train_per_class"] == "4"
        assert record["parameters"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert not (out / "notebooks").exists()
    assert capsys.readouterr().out.count("ran  snips2") == 2
    mtimes = [p.stat().st_mtime_ns for p in results]

    assert main([*base, "--seeds", "2"]) == 0  # everything is done: nothing reruns
    assert capsys.readouterr().out.count("skipped  snips2") == 2
    assert [p.stat().st_mtime_ns for p in results] == mtimes

    assert main([*base, "--seeds", "1", "--set", "ft.learning_rate=1e-3"]) == 2  # other settings: not reused
    assert "other settings" in capsys.readouterr().err and results[0].stat().st_mtime_ns == mtimes[0]

    assert main([*base, "--seeds", "1", "--overwrite"]) == 0  # reruns seed 0 only, in this process
    assert "ran  snips2__all-MiniLM-L6-v2__ft__seed0" in capsys.readouterr().out
    assert results[0].stat().st_mtime_ns != mtimes[0] and results[1].stat().st_mtime_ns == mtimes[1]

    accuracies = [100 * json.loads(p.read_text())["accuracy"] for p in results]
    wide = pd.read_csv(out / "table4.csv")
    assert list(wide.columns) == ["dataset", "model", "ft mean", "ft std", "ft paper", "ft diff"]
    row = wide.iloc[0]
    assert (row["dataset"], row["model"]) == ("snips2", "all-MiniLM-L6-v2")
    assert row["ft mean"] == pytest.approx(sum(accuracies) / 2, abs=0.01)
    assert row["ft std"] == pytest.approx(pd.Series(accuracies).std(), abs=0.01)
    assert row["ft paper"] == 93.86 and row["ft diff"] == pytest.approx(row["ft mean"] - 93.86, abs=0.02)
    # a cpu-preset run of another model: the csv keeps the paper's number, the table a reader sees does not show it
    assert "| FT | " in (out / "table4.md").read_text() and "93.86" not in (out / "table4.md").read_text()
    assert "seeds (0,1)" in (out / "table4.md").read_text()
    saved = [json.loads(line) for line in (out / "table4_runs.jsonl").read_text().splitlines()]
    assert len(saved) == 2 and {entry["record"]["seed"] for entry in saved} == {0, 1}
    assert (out / "table4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.partial*")) and not list(out.glob(".*tmp"))


@pytest.mark.slow
def test_driver_resumes_a_killed_cell(tmp_path, data_dir, monkeypatch, capsys):
    """A cell whose run was killed after phase 1 continues from the saved phase-1 body instead of starting again."""
    from threephase import pipeline, run
    from threephase.notebook import notebook_config

    monkeypatch.setenv("THREEPHASE_DATA_DIR", data_dir)
    out = tmp_path / "table4"
    name = "snips2__all-MiniLM-L6-v2__dae-ft__seed0"
    settings = {TINY[i + 1].split("=")[0]: TINY[i + 1].split("=")[1] for i in range(0, len(TINY), 2)}
    config = notebook_config("cpu", "snips2", None, seed=0, variant="dae-ft", settings=settings)
    config.output_dir = str(out / "runs" / name)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the runtime went away during phase 3

    monkeypatch.setattr(pipeline, "train_ft", killed)
    with pytest.raises(KeyboardInterrupt):
        run(config)
    monkeypatch.undo()
    monkeypatch.setenv("THREEPHASE_DATA_DIR", data_dir)
    saved = json.loads((out / "runs" / name / "phases" / "dae" / "report.json").read_text())
    assert not (out / "runs" / name / "metrics.json").exists()

    assert main(["reproduce", "--table", "4", "--datasets", "snips2", "--variants", "dae-ft", "--preset", "cpu",
                 "--seeds", "1", "--out", str(out), *TINY]) == 0
    assert f"ran  {name}" in capsys.readouterr().out
    record = json.loads((out / "runs" / name / "results.json").read_text())
    assert record["phases"]["dae"] == saved  # phase 1 was loaded, not trained again
    assert not (out / "runs" / name / "phases").exists()


@pytest.mark.slow
def test_notebooks_option_keeps_the_executed_notebook_and_records_like_the_default(tmp_path, data_dir, monkeypatch,
                                                                                    capsys):
    monkeypatch.setenv("THREEPHASE_DATA_DIR", data_dir)  # the notebook's kernel inherits the environment
    out = tmp_path / "table4"
    # Seed 3, not the default 0: the notebook must record the parameters papermill gave it (this is notebook 06's
    # papermill run; the book build runs it with its defaults only).
    base = ["reproduce", "--table", "4", "--datasets", "snips2", "--variants", "ft", "--preset", "cpu",
            "--seeds", "3,", "--out", str(out), *TINY]
    assert main([*base, "--notebooks"]) == 0
    name = "snips2__all-MiniLM-L6-v2__ft__seed3"
    assert (out / "notebooks" / f"{name}.ipynb").is_file() and f"ran  {name}" in capsys.readouterr().out
    results = out / "runs" / name / "results.json"
    record = json.loads(results.read_text())
    assert record["seed"] == 3 and record["parameters"]["seed"] == 3 and record["variant"] == "ft"
    assert record["split_sizes"]["test"] == 3 * len(record["label_names"])  # data.test_per_class=3 from --set
    assert json.loads((results.parent / "config.json").read_text())["seed"] == 3
    assert (results.parent / "metrics.json").is_file() and (results.parent / "classifier").is_dir()
    mtime = results.stat().st_mtime_ns
    assert main(base) == 0  # the default path reads the notebook's record as its own: nothing reruns
    assert f"skipped  {name}" in capsys.readouterr().out and results.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_an_installed_wheel_reproduces_outside_the_checkout(tmp_path, data_dir):
    """Build the wheel, install it into a fresh virtual environment, and run `reproduce` in a folder of its own."""
    source = tmp_path / "source"  # the files the wheel is made of, so that the build leaves the checkout untouched
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "threephase", source / "threephase", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing may import the checkout
    env.update(THREEPHASE_DATA_DIR=data_dir, HF_HUB_OFFLINE="1")

    def call(*command, cwd=tmp_path):
        done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        return done.stdout

    call(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "wheels",
         source)
    wheel = next((tmp_path / "wheels").glob("threephase-*.whl"))
    venv = tmp_path / "venv"
    call(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    call(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel)
    # torch and the rest come from this environment's site-packages, appended to the new one's path.
    site = Path(call(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    outer = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "outer_site_packages.pth").write_text("\n".join(outer) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert call(python, "-c", "import threephase; print(threephase.__file__)", cwd=elsewhere).startswith(str(venv))
    call(python, "-m", "threephase", "reproduce", "--table", "4", "--datasets", "snips2", "--variants", "ft",
         "--seeds", "1", "--preset", "cpu", "--out", "table4", *TINY, cwd=elsewhere)
    for suffix in ("md", "csv", "png"):
        assert (elsewhere / "table4" / f"table4.{suffix}").is_file()
    record = json.loads((elsewhere / "table4" / "runs" / "snips2__all-MiniLM-L6-v2__ft__seed0" / "results.json")
                        .read_text())
    assert record["parameters"]["seed"] == 0 and 0 <= record["accuracy"] <= 1


def test_tables_give_paired_differences_with_intervals(tmp_path):
    def records(variant, accuracies, preset="cpu", model="m/all-MiniLM-L6-v2"):
        return [{"dataset": "snips2", "model": model, "variant": variant, "seed": s, "accuracy": a, "preset": preset}
                for s, a in enumerate(accuracies)]

    runs = (records("ft", [0.90, 0.80, 0.85, 0.80, 0.90]) + records("three-phase", [0.92, 0.83, 0.86, 0.82, 0.92])
            + records("joint", [0.95, 0.75, 0.86, 0.80, 0.90]) + records("logreg", [0.7] * 5))
    df = tables.aggregate(runs, table=4).set_index("variant")
    assert list(df.index) == ["three-phase", "joint", "ft", "logreg"]  # the baseline follows the table's variants
    assert df.loc["three-phase", "vs_ft"] == pytest.approx(2.0) and not df.loc["three-phase", "covers_zero"]
    assert df.loc["joint", "covers_zero"] and math.isnan(df.loc["ft", "vs_ft"])
    text = tables.to_markdown(tables.aggregate(runs, table=4))
    three_phase_row = next(line for line in text.splitlines() if line.startswith("| 3-Phase |"))
    assert three_phase_row.split(" | ")[-1].startswith("+2.00 [") and "†" not in three_phase_row
    joint_row = next(line for line in text.splitlines() if line.startswith("| Joint |"))
    assert "+0.20 [" in joint_row and "†" in joint_row and "† marks an interval that covers 0" in text
    wide = tables.to_wide(tables.aggregate(runs, table=4))
    assert {"3-phase", "three-phase vs_ft", "three-phase ci_low", "three-phase ci_high"} - set(wide.columns) == {"3-phase"}
    assert "ft vs_ft" not in wide.columns
    assert not tables.aggregate(runs, table=4)["paper_setting"].any()  # cpu preset: no paper markers
    paper = tables.aggregate(records("ft", [0.9, 0.92], preset="paper",
                                        model="sentence-transformers/all-MiniLM-L12-v2"), table=4)
    assert paper["paper_setting"].all()
    assert tables.plot_variants(tables.aggregate(runs, table=4)).axes[0].get_ylim()[0] > 50  # not from 0
