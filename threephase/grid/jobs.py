"""Grid cells as jobs through ``submitit``: ``--executor slurm`` (one SLURM job per cell, a job array per grid) or
``--executor local`` (the same submission, as processes on this machine; what CI runs).

A cell's state lives in its run folder, not in the submitting process: ``results.json`` means finished, ``phases/``
a partial run that the next job resumes. ``<out>/slurm/jobs.json`` maps each cell to the last job that ran it, so
that a rerun of the same command skips finished cells, leaves queued or running ones alone, resubmits lost ones
(killed without a word), and reports failed ones with their logs (``<out>/slurm/<job id>/``, submitit's files).
A search's workers go through the same :func:`run_tasks` (:func:`threephase.grid.search.run_search_jobs`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ThreePhaseError
from ..records import atomic_write_text
from .cells import _finished, cell_parameters, failure, run_cell, run_name

try:  # the cluster extra; without it only --executor fails, with a clear message (see executor_options)
    from submitit.core.utils import JobPaths, pickle_load
    from submitit.helpers import Checkpointable, DelayedSubmission
except ImportError:  # pragma: no cover
    Checkpointable, DelayedSubmission = object, None

JOBS_FILE = "jobs.json"
POLL_S = 2.0
DEFAULTS = {"slurm_partition": None, "slurm_gpus_per_job": 1, "slurm_time": 180, "slurm_mem": 32.0}


@dataclass
class ExecutorOptions:
    kind: str = "local"
    partition: str | None = None
    gpus_per_job: int = 1
    time_min: int = 180
    mem_gb: float = 32.0
    setup: list[str] = field(default_factory=list)
    wait: bool = False  # slurm only: local always waits, its jobs are this machine's processes
    retry_failed: bool = False
    queued: list[str] = field(default_factory=list)  # filled per grid: cells not finished when this call ends


def add_executor_options(parser: argparse.ArgumentParser, unit: str = "cell", pool: bool = True) -> None:
    """The cluster options; ``pool``: the command also has a ``--jobs`` pool of local processes (search has not)."""
    group = parser.add_argument_group("cluster (needs submitit: pip install 'threephase[cluster]')")
    group.add_argument("--executor", choices=("local", "slurm"),
                       help=f"run each {unit} as a submitit job: slurm submits them to SLURM (logs in "
                            "<out>/slurm/<job id>/), local runs the same jobs as processes here (default: no "
                            f"executor, in this process{' or the --jobs pool' if pool else ''})")
    group.add_argument("--wait", action="store_true", help="with --executor slurm: wait for the jobs (local does)")
    group.add_argument("--retry-failed", action="store_true", help=f"submit the {unit}s whose job failed again")
    group.add_argument("--slurm-partition", help="SLURM partition (default: the cluster's)")
    group.add_argument("--slurm-gpus-per-job", type=int, metavar="N", help="GPUs per job (default 1)")
    group.add_argument("--slurm-time", type=int, metavar="MINUTES",
                       help="time limit per job (default 180); a job at its limit is requeued and resumes")
    group.add_argument("--slurm-mem", type=float, metavar="GB", help="memory per job in GB (default 32)")
    group.add_argument("--slurm-setup", action="append", default=[], metavar="LINE",
                       help="a shell line each job runs first, e.g. 'module load cuda' or 'source .venv/bin/"
                            "activate' (repeatable)")


def executor_options(args: argparse.Namespace) -> ExecutorOptions | None:
    """The options of ``--executor``, or None without it (then a --slurm-* flag is a mistake, not a no-op)."""
    given = [f"--{k.replace('_', '-')}" for k in DEFAULTS if getattr(args, k, None) is not None]
    given += ["--slurm-setup"] * bool(args.slurm_setup) + ["--wait"] * args.wait
    if args.executor is None:
        if given or args.retry_failed:
            raise ThreePhaseError(f"{', '.join(given) or '--retry-failed'} needs --executor slurm (or local).")
        return None
    if DelayedSubmission is None:
        raise ThreePhaseError("--executor needs submitit: pip install 'threephase[cluster]'.")
    if getattr(args, "jobs", 1) != 1 or getattr(args, "notebooks", False):
        raise ThreePhaseError("--executor runs each cell as a job of its own: drop --jobs and --notebooks.")
    value = {k: DEFAULTS[k] if getattr(args, k) is None else getattr(args, k) for k in DEFAULTS}
    if value["slurm_gpus_per_job"] < 0 or value["slurm_time"] < 1 or value["slurm_mem"] <= 0:
        raise ThreePhaseError("--slurm-gpus-per-job must be 0 or more, --slurm-time and --slurm-mem above 0.")
    return ExecutorOptions(args.executor, value["slurm_partition"], value["slurm_gpus_per_job"], value["slurm_time"],
                           value["slurm_mem"], list(args.slurm_setup), args.wait, args.retry_failed)


def job_parameters(options: ExecutorOptions, name: str) -> dict[str, Any]:
    """``AutoExecutor.update_parameters`` for one job: the generic names apply to both executors; the ``slurm_``
    ones only to SLURM."""
    only_slurm = {"slurm_partition": options.partition, "slurm_setup": list(options.setup)}
    return {"name": name, "timeout_min": options.time_min, "mem_gb": options.mem_gb,
            "gpus_per_node": options.gpus_per_job, "tasks_per_node": 1, "nodes": 1,
            **{key: value for key, value in only_slurm.items() if value}}


def make_executor(folder: Path, options: ExecutorOptions, name: str):
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=options.kind)
    executor.update_parameters(**job_parameters(options, name))
    return executor


class CellJob(Checkpointable):
    """One cell as a job. On preemption or at its time limit, submitit calls :meth:`checkpoint`, which requeues
    the same cell: :func:`~threephase.grid.cells.run_cell` then resumes its run folder."""

    def __call__(self, cell, out, overrides, parameters, overwrite=False):
        from ..logs import quiet_logging

        quiet_logging()
        return run_cell(cell, out, overrides, overwrite, parameters)

    def checkpoint(self, cell, out, overrides, parameters, overwrite=False):
        return DelayedSubmission(self, cell, out, overrides, parameters, False)  # resume, never start over


def load_jobs(folder: Path) -> dict[str, dict[str, str]]:
    return json.loads((folder / JOBS_FILE).read_text())["jobs"] if (folder / JOBS_FILE).is_file() else {}


def save_jobs(folder: Path, jobs: Mapping[str, Mapping[str, str]]) -> None:
    atomic_write_text(folder / JOBS_FILE, json.dumps({"jobs": jobs}, indent=1, sort_keys=True))


def _paths(entry: Mapping[str, str]):
    return JobPaths(entry["folder"], entry["job_id"])


def slurm_alive() -> set[str] | None:
    """The ids of this user's queued or running SLURM jobs (array tasks one by one), or None when ``squeue``
    cannot tell (not on a cluster): then a job without a result counts as queued."""
    if shutil.which("squeue") is None:
        return None
    try:
        listed = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-u", getpass.getuser()], capture_output=True,
                                text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {line.strip() for line in listed.splitlines() if line.strip()}


def _alive(entry: Mapping[str, str], queued_ids: set[str] | None) -> bool:
    if entry["kind"] == "local":  # a LocalExecutor job id is the id of its controller process
        try:
            os.kill(int(entry["job_id"]), 0)
        except (OSError, ValueError):
            return False
        return True
    return queued_ids is None or entry["job_id"] in queued_ids


def job_state(entry: Mapping[str, str] | None, queued_ids: set[str] | None) -> tuple[str, str]:
    """(``finished`` | ``failed`` | ``queued`` | ``missing``, detail) of the job a task last had."""
    if entry is None:
        return "missing", ""
    paths = _paths(entry)
    logs = f"{paths.stdout} and {paths.stderr}"
    if paths.result_pickle.is_file():
        outcome, value = pickle_load(paths.result_pickle)
        again = "; once fixed, --retry-failed submits it again"
        if outcome != "success":
            return "failed", f"job {entry['job_id']} raised {str(value).strip().splitlines()[-1]}; see {logs}{again}"
        if isinstance(value, Mapping) and value.get("status") == "failed":
            return "failed", f"{value['error'].splitlines()[0]}; see {value['log']} and {logs}{again}"
        return "finished", ""
    if _alive(entry, queued_ids):
        return "queued", f"job {entry['job_id']}, logs {logs}"
    return "missing", ""  # killed without a result (a lost node, a cancelled job): it is submitted again


def run_tasks(tasks: Mapping[str, tuple], job: Callable, out: Path, options: ExecutorOptions, *, name: str,
              settled: Callable[[str], tuple[str, str] | None] = lambda task: None,
              force: bool = False) -> tuple[list[str], list[str]]:
    """Submit the ``tasks`` (name -> arguments of ``job``) that need a job, wait if the options say so, and return
    (failed, queued) lines. ``settled(task)`` reads a state from the task's own record (a run folder) before its
    job's; ``force`` submits every task that is not queued (``--overwrite``)."""
    folder = out / "slurm"
    jobs = load_jobs(folder)
    alive = {"ids": slurm_alive() if any(e["kind"] == "slurm" for e in jobs.values()) else None}

    def state(task: str) -> tuple[str, str]:  # with force, a queued job may be overwriting a finished cell
        by_job = job_state(jobs.get(task), alive["ids"])
        return by_job if force and by_job[0] == "queued" else settled(task) or by_job

    states = {task: state(task) for task in tasks}
    submit = [t for t, (s, _) in states.items()
              if s == "missing" or (force and s != "queued") or (options.retry_failed and s == "failed"
                                                                 and t in jobs and settled(t) is None)]
    submitted = {}
    if submit:
        executor = make_executor(folder, options, name)  # one job per task; on SLURM, one job array
        submitted = dict(zip(submit, executor.map_array(job, *zip(*(tasks[t] for t in submit)))))
        for task, handle in submitted.items():
            jobs[task] = {"job_id": str(handle.job_id), "folder": str(folder / "%j"), "kind": options.kind}
            states[task] = job_state(jobs[task], None)
        save_jobs(folder, jobs)
        first = next(iter(submitted.values())).paths
        print(f"submitted {len(submit)} {name} job(s) ({options.kind}); logs in {first.folder.parent}/<job id>/")
    if options.kind == "local" or options.wait:
        while any(s == "queued" for s, _ in states.values()):
            time.sleep(POLL_S if options.kind == "local" else max(POLL_S, 30))  # squeue is not to be hammered
            for handle in submitted.values():
                handle.done()  # reaps a finished local process, so that its id reads as gone
            if options.kind == "slurm":
                alive["ids"] = slurm_alive()
            for task in [t for t, (s, _) in states.items() if s == "queued"]:
                states[task] = state(task)
                if states[task][0] != "queued":
                    print(f"{states[task][0]:>8}  {task}")
    failed = [f"{t} ({detail})" for t, (s, detail) in states.items() if s == "failed"]
    queued = [f"{t} ({detail})" for t, (s, detail) in states.items() if s == "queued"]
    return failed, queued


def run_cells_as_jobs(cells: list[dict[str, Any]], out: str | os.PathLike, overrides: Mapping[str, Any] | None,
                      overwrite: bool, parameters: Mapping[str, Any] | None,
                      options: ExecutorOptions) -> list[str]:
    """Run a grid's cells as jobs; return one line per failed cell and add the unfinished ones to
    ``options.queued``."""
    out = Path(out).resolve()
    by_name = {run_name(c): c for c in cells}
    tasks = {n: (dict(c), str(out), dict(overrides or {}), dict(parameters or {}), overwrite)
             for n, c in by_name.items()}

    def settled(task: str) -> tuple[str, str] | None:  # results.json: finished, or finished with other settings
        done = _finished(cell_parameters(by_name[task], out, overrides, False, parameters))
        if done is None:
            return None
        return ("finished", "") if done["status"] == "skipped" else ("failed", f"{done['error']}; see {done['log']}")

    failed, queued = run_tasks(tasks, CellJob(), out, options, name=f"threephase-{out.name}", settled=settled,
                               force=overwrite)
    options.queued += queued
    return failed


def still_running(options: ExecutorOptions | None, failed: list[str]) -> int | None:
    """When cells are still queued: say which and where to look, and return the exit status (0, or raise for
    failures); None when every cell has ended, and the tables can be written."""
    if options is None or not options.queued:
        return None
    print(f"{len(options.queued)} cell(s) still queued or running; no tables yet:")
    for line in options.queued:
        print(f"  {line}")
    print("Rerun the same command when they have ended: it skips finished cells and writes the tables.")
    if failed:
        raise failure(failed)
    return 0

