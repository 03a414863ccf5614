"""Grids as submitit jobs: --executor local runs the same submission as --executor slurm, as processes here; the run
folders and <out>/slurm/jobs.json are the grid's whole state, so that a rerun skips, waits for or resubmits cells."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from threephase.grid import jobs
from threephase.cli import main

TINY = ["--set", "data.train_per_class=4", "--set", "data.validation_per_class=2", "--set", "data.test_per_class=3",
        "--set", "max_seq_length=16"]
NAMES = [f"snips2__all-MiniLM-L6-v2__logreg__seed{s}" for s in (0, 1)]


def grid(out: Path, seeds: str, *extra: str) -> list[str]:
    return ["reproduce", "--table", "4", "--datasets", "snips2", "--variants", "logreg", "--preset", "cpu",
            "--device", "cpu", "--seeds", seeds, "--out", str(out), *TINY, *extra]


def dead_pid() -> str:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return str(process.pid)


def test_local_executor_runs_the_grid_like_the_driver_and_a_rerun_runs_only_what_is_missing(
        tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("THREEPHASE_DATA_DIR", data_dir)  # the jobs inherit the environment
    monkeypatch.setattr(jobs, "POLL_S", 0.2)
    jobs_out, driver_out = tmp_path / "jobs", tmp_path / "driver"
    # One cell as a job, as if the submitting process had been killed after it; the second cell's job was lost.
    assert main(grid(jobs_out, "1", "--executor", "local")) == 0
    first = jobs_out / "runs" / NAMES[0] / "results.json"
    mtime, first_job = first.stat().st_mtime_ns, jobs.load_jobs(jobs_out / "slurm")[NAMES[0]]
    lost = {**first_job, "job_id": dead_pid()}
    jobs.save_jobs(jobs_out / "slurm", {NAMES[0]: first_job, NAMES[1]: lost})
    capsys.readouterr()

    assert main(grid(jobs_out, "2", "--executor", "local")) == 0
    out = capsys.readouterr().out
    assert "submitted 1 " in out and f"finished  {NAMES[1]}" in out
    assert first.stat().st_mtime_ns == mtime  # not trained again
    recorded = jobs.load_jobs(jobs_out / "slurm")
    assert recorded[NAMES[0]] == first_job and recorded[NAMES[1]]["job_id"] != lost["job_id"]
    assert Path(jobs._paths(recorded[NAMES[1]]).result_pickle).is_file()  # it ran through submitit

    assert main(grid(jobs_out, "2", "--executor", "local")) == 0  # all done: nothing submitted
    assert "submitted" not in capsys.readouterr().out
    assert jobs.load_jobs(jobs_out / "slurm") == recorded

    assert main(grid(driver_out, "2")) == 0  # today's in-process driver on the same cells
    for table in ("table4.md", "table4.csv"):
        assert (jobs_out / table).read_text() == (driver_out / table).read_text()


def test_slurm_parameters_of_a_cell(tmp_path, monkeypatch):
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", staticmethod(lambda: 1))  # no srun here
    options = jobs.ExecutorOptions("slurm", "gpu", 1, 90, 16, ["module load cuda/12", "source .venv/bin/activate"])
    params = jobs.job_parameters(options, "threephase-table3")
    assert params == {"name": "threephase-table3", "timeout_min": 90, "mem_gb": 16, "gpus_per_node": 1,
                      "tasks_per_node": 1, "nodes": 1, "slurm_partition": "gpu",
                      "slurm_setup": ["module load cuda/12", "source .venv/bin/activate"]}
    executor = jobs.make_executor(tmp_path / "slurm", options, "threephase-table3")
    script = executor._executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=90", "#SBATCH --mem=16GB",
                 "#SBATCH --job-name=threephase-table3", "#SBATCH --ntasks-per-node=1",
                 f"#SBATCH --output={tmp_path}/slurm/%j/%j_0_log.out", "module load cuda/12\n"):
        assert line in script
    assert script.index("source .venv/bin/activate") < script.index("srun")
    # a preempted cell comes back as the same cell, resumed rather than overwritten
    again = jobs.CellJob().checkpoint({"seed": 0}, "out", {}, {}, True)
    assert again.args[0] == {"seed": 0} and again.args[-1] is False


def test_a_rerun_reports_queued_and_failed_cells_with_their_logs(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("THREEPHASE_DATA_DIR", data_dir)
    monkeypatch.setattr(jobs.shutil, "which", lambda name: None)  # no squeue: a job without result is queued
    out = tmp_path / "t4"
    folder = out / "slurm"
    jobs.save_jobs(folder, {NAMES[0]: {"job_id": "77_0", "folder": str(folder / "%j"), "kind": "slurm"}})
    assert main(grid(out, "1", "--executor", "slurm")) == 0
    text = capsys.readouterr().out
    assert "1 cell(s) still queued" in text and "job 77_0" in text and f"{folder}/77_0/77_0_0_log.out" in text
    assert not (out / "table4.md").exists()

    result = folder / "77_0" / "77_0_0_result.pkl"
    result.parent.mkdir(parents=True)
    result.write_bytes(pickle.dumps(("error", "Traceback (most recent call last):\nRuntimeError: CUDA out of memory")))
    assert main(grid(out, "1", "--executor", "slurm")) == 2  # failed: reported, not resubmitted
    err = capsys.readouterr().err
    assert "CUDA out of memory" in err and "77_0_0_log.err" in err and "--retry-failed" in err
    assert json.loads((folder / "jobs.json").read_text())["jobs"][NAMES[0]]["job_id"] == "77_0"


def test_slurm_flags_need_an_executor(tmp_path, capsys):
    assert main(grid(tmp_path, "1", "--slurm-partition", "gpu")) == 2
    assert "--slurm-partition needs --executor" in capsys.readouterr().err
    assert main(grid(tmp_path, "1", "--executor", "slurm", "--jobs", "2")) == 2
    assert "drop --jobs" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_search_spread_over_two_local_workers_fills_one_study(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setattr(jobs, "POLL_S", 0.2)
    out = tmp_path / "search"
    search = ["search", "--dataset", "snips2", "--data-dir", data_dir, "--variant", "logreg", "--preset", "cpu",
              "--device", "cpu", *TINY, "--n-trials", "3", "--metric", "accuracy", "--out", str(out),
              "--executor", "local", "--workers", "2"]
    assert main(search) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "submitted 2 " in "\n".join(lines)
    summary = json.loads(lines[-1])
    # Each worker stops when the shared study holds 3 finished trials; a third may be on its way then.
    assert summary["finished_trials"] in (3, 4) and set(summary["best_params"]) == {"logreg.C"}
    recorded = jobs.load_jobs(out / "slurm")
    assert set(recorded) == {"worker0", "worker1"}
    assert main(search) == 0  # the study is full: no worker is submitted again
    assert "submitted" not in capsys.readouterr().out and jobs.load_jobs(out / "slurm") == recorded
