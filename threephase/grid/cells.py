"""Running the cells of a reproduction: in this process (the default), through notebook 06 with papermill
(``--notebooks``, from a clone), or several at once in worker processes (``--jobs N``), each on its own GPU when
several are visible.

Every path writes the same record per cell: ``<out>/runs/<name>/`` with ``config.json``, ``metrics.json``,
``classifier/`` and ``results.json`` (the metrics plus the cell's parameters). A cell whose ``results.json`` exists
is skipped when it was made with the same parameters and refused otherwise (unless ``overwrite``); a cell killed on
the way resumes from what its run folder kept (``run(config, overwrite=overwrite, resume=not overwrite)``, as the
notebook does).

A worker is ``python -m threephase.grid.cells SPEC RESULT``: it runs one cell with :func:`run_cell` and writes the
outcome to ``RESULT``. Its output goes to ``<out>/logs/<name>.log``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..config import RunConfig, apply_overrides, changed_settings
from ..errors import ThreePhaseError
from ..records import write_json

logger = logging.getLogger(__name__)

NOTEBOOK = "06_reproduce.ipynb"
# The notebook's parameters that say what a cell computed; the others (device, output_dir, overwrite) say where it
# ran and how this call treats an old run.
RECORDED = ("dataset", "model", "variant", "preset", "seed", "train_per_class", "validation_per_class",
            "test_per_class", "device", "overrides", "output_dir")


def short_name(model: str) -> str:
    """``sentence-transformers/all-MiniLM-L6-v2`` -> ``all-MiniLM-L6-v2`` (for file names and tables)."""
    return Path(str(model).rstrip("/")).name


def run_name(cell: Mapping[str, Any]) -> str:
    """``<dataset>__<model>__<variant>[__draw<d>]__seed<k>``: the experiment's cells name their data draw; your own
    data (``compare --data-dir``) has no dataset name, and its runs are named after ``data``."""
    draw = f"__draw{cell['draw']}" if cell.get("draw") is not None else ""
    return f"{cell['dataset'] or 'data'}__{short_name(cell['model'])}__{cell['variant']}{draw}__seed{cell['seed']}"


def failure(failed: list[str]) -> ThreePhaseError:
    """The error that ends a grid with failed cells (one line each, from the run functions), and what to do."""
    return ThreePhaseError(f"{len(failed)} run(s) failed: " + "; ".join(failed) +
                           ". Fix the cause and rerun the same command: finished runs are skipped.")


def notebook_path() -> Path:
    """``notebooks/06_reproduce.ipynb`` of the repository this package was imported from (for ``--notebooks``)."""
    path = Path(__file__).resolve().parents[2] / "notebooks" / NOTEBOOK
    if not path.is_file():
        raise ThreePhaseError(
            f"The reproduction notebook {str(path)!r} is missing (an installed wheel has no notebooks): drop "
            "--notebooks to run the cells without it, or run from a clone of the repository, installed with "
            "`pip install -e .`."
        )
    return path


def cell_config(parameters: Mapping[str, Any]) -> RunConfig:
    """The run config of one cell from notebook 06's parameters; the notebook and the driver both build it here."""
    from ..notebook import notebook_config

    overrides = parameters.get("overrides") or {}
    overrides = json.loads(overrides) if isinstance(overrides, str) else dict(overrides)
    config = notebook_config(parameters["preset"], parameters["dataset"], parameters.get("model"),
                             seed=parameters["seed"], device=parameters.get("device"), variant=parameters["variant"],
                             settings={"data.train_per_class": parameters.get("train_per_class"),
                                       "data.validation_per_class": parameters.get("validation_per_class"),
                                       "data.test_per_class": parameters.get("test_per_class"), **overrides})
    # A notebook parameter left None means "the preset's", and notebook_config drops it; an override set to None
    # means None (no cap on the training split, no class weights) and must reach the config.
    config = apply_overrides(config, {key: None for key, value in overrides.items() if value is None}).validate()
    config.output_dir = parameters["output_dir"]
    return config


def write_results(parameters: Mapping[str, Any], config: RunConfig, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``results.json`` into the cell's run folder: the metrics plus the parameters that made them. The
    driver treats a run folder with ``results.json`` as done."""
    from .. import __version__

    recorded = {key: parameters.get(key) for key in RECORDED}
    recorded["model"] = config.model_name_or_path
    overrides = recorded["overrides"] or {}
    recorded["overrides"] = json.loads(overrides) if isinstance(overrides, str) else dict(overrides)
    record = {**metrics, "preset": parameters["preset"], "parameters": recorded, "threephase_version": __version__}
    write_json(Path(config.output_dir) / "results.json", record)
    return record


def cell_parameters(cell: Mapping[str, Any], out: str | os.PathLike, overrides: Mapping[str, Any] | None = None,
                    overwrite: bool = False, parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Notebook 06's parameters for a cell: the cell, ``parameters`` (subset sizes, ``device``), the ``--set``
    overrides as JSON, and its run folder ``<out>/runs/<name>``."""
    run_dir = Path(out).resolve() / "runs" / run_name(cell)
    return {**cell, **(parameters or {}), "overrides": json.dumps(dict(overrides or {})), "output_dir": str(run_dir),
            "overwrite": overwrite}


def run_cell(cell: Mapping[str, Any], out: str | os.PathLike, overrides: Mapping[str, Any] | None = None,
             overwrite: bool = False, parameters: Mapping[str, Any] | None = None, notebooks: bool = False,
             log_file: bool = True) -> dict[str, Any]:
    """Run one (dataset, model, variant, seed, preset); return its status (``ran``, ``skipped`` or ``failed``) and
    record.

    The run folder is ``<out>/runs/<name>``. In this process the run logs to ``<out>/logs/<name>.log``; with
    ``notebooks`` the executed notebook is kept as ``<out>/notebooks/<name>.ipynb``.
    """
    params = cell_parameters(cell, out, overrides, overwrite, parameters)
    done = _finished(params)
    if done is not None:
        return done
    if notebooks:
        return _run_notebook(params, Path(out).resolve())
    name = run_name(cell)
    log = Path(out).resolve() / "logs" / f"{name}.log"
    handler = None
    if log_file:
        log.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logging.getLogger().addHandler(handler)
    start = time.perf_counter()
    try:
        from ..pipeline import run

        config = cell_config(params)
        result = run(config, overwrite=overwrite, resume=not overwrite)
        record = write_results(params, config, result.metrics)
    except Exception as err:  # one failed cell must not stop the grid; the log keeps the traceback
        logger.error("%s failed: %s", name, err, exc_info=not isinstance(err, ThreePhaseError))
        return {"name": name, "status": "failed", "error": f"{type(err).__name__}: {err}", "log": str(log)}
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
    return {"name": name, "status": "ran", "seconds": time.perf_counter() - start, "record": record, "log": str(log)}


def _finished(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The status of a cell whose ``results.json`` exists (skipped, or refused for other settings), else None."""
    results = Path(params["output_dir"]) / "results.json"
    if params["overwrite"] or not results.is_file():
        return None
    name = Path(params["output_dir"]).name
    record = json.loads(results.read_text())
    # device and output_dir say where a run ran, not what it computed; overwrite, how this call treats an old run;
    # draw only names the run (results.json does not record it): its data.seed, among the overrides, is compared.
    changed = changed_settings(record.get("parameters", {}), {**params, "overrides": json.loads(params["overrides"])},
                               ignore=("device", "output_dir", "overwrite", "draw"))
    if changed:
        return {"name": name, "status": "failed", "log": str(results),
                "error": f"it finished earlier with other settings ({changed}); rerun it with --overwrite, or "
                         "choose another --out"}
    return {"name": name, "status": "skipped", "record": record}


def _run_notebook(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """Execute notebook 06 with ``params`` through papermill, keeping the executed copy (with its traceback if any)."""
    import papermill

    name = Path(params["output_dir"]).name
    output_nb = out / "notebooks" / f"{name}.ipynb"
    output_nb.parent.mkdir(parents=True, exist_ok=True)
    source = notebook_path()
    partial = output_nb.with_name(f".{name}.partial.ipynb")
    logging.getLogger("papermill").setLevel(logging.WARNING)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(source), str(partial), parameters=params, kernel_name="python3",
                                   cwd=str(source.parent), progress_bar=False, log_output=False)
    except Exception as err:  # keep the notebook with its traceback for inspection
        with contextlib.suppress(FileNotFoundError):
            os.replace(partial, output_nb)
        return {"name": name, "status": "failed", "error": f"{type(err).__name__}: {str(err)[-400:]}",
                "log": str(output_nb)}
    os.replace(partial, output_nb)
    record = json.loads((Path(params["output_dir"]) / "results.json").read_text())
    return {"name": name, "status": "ran", "seconds": time.perf_counter() - start, "record": record,
            "log": str(output_nb)}


def visible_gpus() -> list[str]:
    """The GPUs the workers can be spread over (``CUDA_VISIBLE_DEVICES`` entries or indices); [] for fewer than 2."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [g.strip() for g in listed.split(",") if g.strip()] if listed else [str(i) for i in range(count)]
    return ids[:count]


def worker_env(slot: int, jobs: int, gpus: list[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of worker ``slot``: its own GPU (round robin) when several are visible; on CPUs, an equal
    share of the cores, so that ``jobs`` processes do not each start a thread per core."""
    env = dict(os.environ if environ is None else environ)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    else:
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, threads)
    return env


def run_cells(cells: list[dict[str, Any]], out: str | os.PathLike, overrides: Mapping[str, Any] | None = None,
              overwrite: bool = False, parameters: Mapping[str, Any] | None = None, notebooks: bool = False,
              jobs: int = 1) -> Iterator[dict[str, Any]]:
    """Run ``cells`` and yield each one's status as it ends: one at a time in this process, or ``jobs`` at a time
    in worker processes."""
    if jobs < 1:
        raise ThreePhaseError(f"--jobs {jobs}: run at least one process.")
    if jobs == 1:
        for cell in cells:
            yield run_cell(cell, out, overrides, overwrite, parameters, notebooks)
        return
    yield from _run_parallel(cells, Path(out).resolve(), overrides, overwrite, parameters, notebooks, jobs)


def _run_parallel(cells, out: Path, overrides, overwrite, parameters, notebooks, jobs) -> Iterator[dict[str, Any]]:
    on_cpu = str((parameters or {}).get("device") or "").startswith("cpu")
    gpus = [] if on_cpu else visible_gpus()
    if gpus and jobs > len(gpus):
        logger.warning("--jobs %d on %d GPUs: some GPUs run two cells at once.", jobs, len(gpus))
    pending, running = list(cells), {}
    (out / "logs").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="threephase-jobs-") as tmp:
        try:
            while pending or running:
                free = [slot for slot in range(jobs) if slot not in running]
                while free and pending:
                    cell = pending.pop(0)
                    done = _finished(cell_parameters(cell, out, overrides, overwrite, parameters))
                    if done is not None:
                        yield done
                        continue
                    slot, name = free.pop(0), run_name(cell)
                    spec, result = Path(tmp) / f"{name}.spec.json", Path(tmp) / f"{name}.result.json"
                    spec.write_text(json.dumps({"cell": cell, "out": str(out), "overrides": dict(overrides or {}),
                                                "overwrite": overwrite, "parameters": dict(parameters or {}),
                                                "notebooks": notebooks}))
                    log = open(out / "logs" / f"{name}.log", "ab")  # noqa: SIM115 (closed when the worker ends)
                    process = subprocess.Popen([sys.executable, "-m", "threephase.grid.cells", str(spec), str(result)],
                                               stdout=log, stderr=subprocess.STDOUT, env=worker_env(slot, jobs, gpus))
                    running[slot] = (process, name, result, log)
                for slot, (process, name, result, log) in list(running.items()):
                    if process.poll() is None:
                        continue
                    log.close()
                    del running[slot]
                    if result.is_file():
                        yield json.loads(result.read_text())
                    else:
                        yield {"name": name, "status": "failed", "log": log.name,
                               "error": f"the worker process ended with exit status {process.returncode}"}
                time.sleep(0.2)
        finally:  # interrupted (Ctrl-C, an error): stop the workers; their run folders resume next time
            for process, _, _, log in running.values():
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)
                if process.poll() is None:
                    process.kill()
                log.close()


def _worker(spec_path: str, result_path: str) -> int:
    from ..logs import quiet_logging

    quiet_logging()
    spec = json.loads(Path(spec_path).read_text())
    outcome = run_cell(spec["cell"], spec["out"], spec["overrides"], spec["overwrite"], spec["parameters"],
                       spec["notebooks"], log_file=False)  # the parent sends this process's output to the log
    Path(result_path).write_text(json.dumps(outcome, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(_worker(*sys.argv[1:]))
