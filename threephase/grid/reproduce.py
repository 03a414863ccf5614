"""Reproductions of the paper's Table 3 (3-Phase vs Joint vs FT) and Table 4 (ablations).

``python -m threephase reproduce --table 4 ...`` runs each cell of the grid (dataset × model × variant × seed) with
:func:`~threephase.run`, in this process or in ``--jobs`` parallel processes (one GPU each), or through
``notebooks/06_reproduce.ipynb`` with papermill (``--notebooks``, keeping each executed notebook; needs a clone).
It skips runs whose ``results.json`` exists (unless ``--overwrite``), resumes runs that were killed on the way, then
aggregates the records: accuracy in %, mean ± std over seeds, with the paper's number and the difference beside each
cell, as Markdown, CSV and a bar chart (PNG), beside every run's config and record (JSON lines). It needs no clone
of the repository: an installed wheel runs it.

The pieces are functions, for notebooks and tests: :func:`grid`, :func:`~threephase.grid.cells.run_cell`,
:func:`~threephase.grid.tables.aggregate`, :func:`~threephase.grid.tables.to_markdown`,
:func:`~threephase.grid.tables.to_wide` and :func:`~threephase.grid.tables.plot_variants`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..config import VARIANTS, DataConfig, apply_overrides, parse_set_options
from ..data import DATA_DIR_ENV, data_source
from ..errors import ThreePhaseError
from ..logs import progress_bars_off
from ..presets import CPU_MODEL, PAPER_MODELS, PRESETS, paper_row, preset_config
from .cells import failure, notebook_path, run_cells
from .jobs import add_executor_options, executor_options, run_cells_as_jobs, still_running
from .tables import PAPER_DATASETS, PAPER_TABLE4, TABLE3_VARIANTS, TABLE4_VARIANTS, to_markdown, write_tables

MODEL_ALIASES = {"roberta": PAPER_MODELS["roberta"], "roberta-base": PAPER_MODELS["roberta"],
                 "minilm": PAPER_MODELS["minilm"], "all-minilm-l12-v2": PAPER_MODELS["minilm"],
                 "all-minilm-l6-v2": CPU_MODEL}


def parse_seeds(text: str | int) -> list[int]:
    """``"3"`` -> seeds 0, 1, 2; ``"0,1,4"`` -> those seeds."""
    text = str(text).strip()
    try:
        if "," in text:
            return sorted({int(s) for s in text.split(",") if s.strip()})
        count = int(text)
    except ValueError:
        raise ThreePhaseError(f"Cannot read --seeds {text!r}: give a count (--seeds 3) or a list (--seeds 0,1,4).") from None
    if count == 0:  # "--seeds 0" most likely means seed 0
        raise ThreePhaseError("--seeds 0 is a count, and runs no seed: for seed 0 alone write --seeds 0, (a list).")
    if count < 1:
        raise ThreePhaseError(f"--seeds {count}: run at least one seed.")
    return list(range(count))


def grid(table: int, datasets=None, models=None, variants=None, seeds=3, preset: str = "cpu") -> list[dict[str, Any]]:
    """The runs of a table: one dict (dataset, model, variant, seed, preset) per cell and seed.

    Defaults follow the paper: Table 3 runs three-phase / Joint / FT with roberta-base and all-MiniLM-L12-v2 (IMDB:
    roberta only), Table 4 the 7 variants with the dataset's base model; the ``cpu`` preset uses all-MiniLM-L6-v2.
    """
    variants = list(variants or (TABLE3_VARIANTS if table == 3 else TABLE4_VARIANTS))
    for kind, value, known in [("table", table, (3, 4)), ("preset", preset, PRESETS)] + \
            [("variant", v, VARIANTS) for v in variants]:
        if value not in known:
            raise ThreePhaseError(f"Unknown {kind} {value!r}. Choose one of: {', '.join(map(str, known))}.")
    seeds = parse_seeds(seeds) if isinstance(seeds, (int, str)) else list(seeds)
    runs = []
    for dataset in datasets or PAPER_DATASETS:
        if models:
            chosen = [MODEL_ALIASES.get(m.lower(), m) for m in models]
        elif preset == "cpu":
            chosen = [CPU_MODEL]
        elif table == 3:
            chosen = [PAPER_MODELS["roberta"]] + ([] if dataset == "imdb" else [PAPER_MODELS["minilm"]])
        else:
            chosen = [PAPER_MODELS[PAPER_TABLE4.get(paper_row(dataset), ("minilm",))[0]]]
        runs += [{"dataset": dataset, "model": m, "variant": v, "seed": s, "preset": preset}
                 for m in chosen for v in variants for s in seeds]
    return runs



EPILOG = """\
grid:      Table 3: three-phase, joint, ft × models (paper preset: roberta-base and all-MiniLM-L12-v2, IMDB roberta
           only); Table 4: the 7 variants with the paper's base model per dataset. The cpu preset uses
           all-MiniLM-L6-v2 everywhere. --datasets glue_sst2 runs the paper's SST-2 (GLUE's; sst2 is the
           sentence-level one); both take the paper's sst2 row.
output:    <out>/runs/<dataset>__<model>__<variant>__seed<k>/ (config.json, metrics.json, results.json,
           classifier/), <out>/logs/<same name>.log (or, with --notebooks, <out>/notebooks/<same name>.ipynb:
           the executed notebook), <out>/table<N>.md, .csv, .png (mean ± std over seeds, the paper's number and
           the difference), <out>/table<N>_runs.jsonl (every run's config and record, without its folder)
rerun:     the same command skips finished runs, resumes killed ones, and refuses finished runs made with other
           settings unless --overwrite

examples:
  python -m threephase reproduce --table 4 --datasets snips2 --preset cpu --seeds 2 --out reproductions/table4
  python -m threephase reproduce --table 3 --datasets glue_sst2,sst5 --preset paper --seeds 3 --jobs 4
  python -m threephase reproduce --table 4 --datasets snips2 --seeds 0,1,4 --set data.train_per_class=16 --notebooks
  python -m threephase reproduce --table 3 --preset paper --executor slurm --slurm-partition gpu --slurm-time 120 \\
      --slurm-setup 'source .venv/bin/activate'    # one SLURM job per cell; rerun to collect the tables
"""


def add_reproduce_parser(commands) -> None:
    """Add the ``reproduce`` subcommand to the CLI's subparsers."""
    parser = commands.add_parser("reproduce", help="reproduce the paper's Table 3 or 4",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=int, required=True, choices=(3, 4), help="the paper's table: 3 or 4")
    parser.add_argument("--datasets", help=f"comma-separated (default: {','.join(PAPER_DATASETS)})")
    parser.add_argument("--models", help="comma-separated Hub ids, folders or roberta-base / all-MiniLM-L12-v2 / "
                        "all-MiniLM-L6-v2 (default: the table's models for the preset)")
    parser.add_argument("--variants", help="comma-separated (default: the table's variants)")
    parser.add_argument("--seeds", default="3", help="a count (3 = seeds 0,1,2) or a list (0,1,4); default 3")
    parser.add_argument("--preset", default="cpu", choices=PRESETS, metavar="PRESET",
                        help=f"one of {', '.join(PRESETS)} (default: cpu)")
    parser.add_argument("--out", help="output folder (default: reproductions/table<N>)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting in every run, e.g. --set data.train_per_class=16 (repeatable)")
    parser.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="rerun runs that already have results.json")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="run N cells at once, each in its own process; with several GPUs visible, process k "
                             "gets GPU k mod (number of GPUs) through CUDA_VISIBLE_DEVICES (default: 1, in this "
                             "process)")
    parser.add_argument("--notebooks", action="store_true",
                        help="run each cell through notebooks/06_reproduce.ipynb with papermill and keep the "
                             "executed notebook (needs a clone of the repository and papermill)")
    add_executor_options(parser)


def split_list(text: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; None or empty -> None (the default)."""
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def absolute_paths(overrides: dict[str, Any]) -> dict[str, Any]:
    """Make ``$THREEPHASE_DATA_DIR`` and ``data.data_dir`` absolute: notebooks run in notebooks/ and workers may
    start elsewhere."""
    if os.environ.get(DATA_DIR_ENV):
        os.environ[DATA_DIR_ENV] = str(Path(os.environ[DATA_DIR_ENV]).expanduser().resolve())
    if overrides.get("data.data_dir"):
        overrides["data.data_dir"] = str(Path(overrides["data.data_dir"]).expanduser().resolve())
    return overrides


def check_grid(runs: list[dict[str, Any]], overrides: dict[str, Any], jobs: int = 1, notebooks: bool = False) -> None:
    """Fail before any run when a dataset cannot be loaded, an override is bad, or the options cannot work."""
    for dataset in {r["dataset"] for r in runs}:
        data_source(DataConfig(dataset=dataset, data_dir=overrides.get("data.data_dir")))
    for dataset, model, preset in {(r["dataset"], r["model"], r["preset"]) for r in runs}:
        apply_overrides(preset_config(preset, dataset, model), overrides).validate()
    if jobs < 1:
        raise ThreePhaseError(f"--jobs {jobs}: run at least one process (--jobs 1 runs in this process).")
    if notebooks:
        notebook_path()


def run_grid(runs: list[dict[str, Any]], out: str | os.PathLike, overrides: dict[str, Any], *, desc: str,
             device: str | None = None, overwrite: bool = False, notebooks: bool = False, jobs: int = 1,
             executor=None) -> list[str]:
    """Run (or skip, or resume) every cell with a progress bar; return one line per failed cell. With ``executor``
    (:class:`~threephase.grid.jobs.ExecutorOptions`) each cell is a submitit job instead, and the cells that have
    not ended go to ``executor.queued``."""
    from tqdm.auto import tqdm

    parameters = {"device": device} if device else {}
    if executor is not None:
        return run_cells_as_jobs(runs, out, overrides, overwrite, parameters, executor)
    failed = []
    with tqdm(total=len(runs), desc=desc, unit="run", disable=progress_bars_off()) as bar:
        for result in run_cells(runs, out, overrides, overwrite, parameters, notebooks, jobs):
            bar.update()
            extra = f" in {result['seconds']:.0f} s" if "seconds" in result else ""
            tqdm.write(f"{result['status']:>7}  {result['name']}{extra}")
            if result["status"] == "failed":
                failed.append(f"{result['name']} ({result['error'].splitlines()[0]}; see {result['log']})")
    return failed


def report(failed: list[str], write, markdown, written: str) -> int:
    """Write the tables (``write()`` returns their frame), print them as ``markdown(frame)``, then raise the
    failures if any; when no run finished at all, the failures are the error."""
    try:
        df = write()
    except ThreePhaseError:
        if failed:  # no table because every run failed: say why they failed
            raise failure(failed) from None
        raise
    print(markdown(df))
    print(f"Wrote {written}")
    if failed:
        raise failure(failed)
    return 0


def reproduce_command(args: argparse.Namespace) -> int:
    """Run the grid, then write the aggregate tables; exit 2 if any run failed."""
    overrides = absolute_paths(parse_set_options(args.set))
    models = [str(Path(m).resolve()) if Path(m).expanduser().is_dir() else m for m in split_list(args.models) or []]
    runs = grid(args.table, split_list(args.datasets), models or None, split_list(args.variants), args.seeds,
                args.preset)
    executor = executor_options(args)
    check_grid(runs, overrides, args.jobs, args.notebooks)
    out = Path(args.out or f"reproductions/table{args.table}")
    failed = run_grid(runs, out, overrides, desc=f"Table {args.table}", device=args.device, overwrite=args.overwrite,
                      notebooks=args.notebooks, jobs=args.jobs, executor=executor)
    queued = still_running(executor, failed)
    if queued is not None:
        return queued
    return report(failed, lambda: write_tables(out, args.table, out), to_markdown,
                  f"{out}/table{args.table}.md, .csv, .png and _runs.jsonl")
