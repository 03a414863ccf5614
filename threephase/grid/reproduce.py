"""Reproductions of the paper's Table 3 (3-Phase vs Joint vs FT) and Table 4 (ablations).

``python -m threephase reproduce --table 4 ...`` runs each cell of the grid (dataset × model × variant × seed) with
:func:`~threephase.run`, in this process or in ``--jobs`` parallel processes (one GPU each), or through
``notebooks/06_reproduce.ipynb`` with papermill (``--notebooks``, keeping each executed notebook; needs a clone).
It skips runs whose ``results.json`` exists (unless ``--overwrite``), resumes runs that were killed on the way, then
aggregates the records: accuracy in %, mean ± std over seeds, with the paper's number and the difference beside each
cell, as Markdown, CSV and a bar chart (PNG). It needs no clone of the repository: an installed wheel runs it.

The pieces are functions, for notebooks and tests: :func:`grid`, :func:`~threephase.driver.run_cell`,
:func:`aggregate`, :func:`to_markdown`, :func:`to_wide` and :func:`plot_variants`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import stats as scipy_stats

from ..config import VARIANTS, DataConfig, apply_overrides, parse_set_options
from ..data import DATA_DIR_ENV, data_source
from .cells import notebook_path, run_cell, run_cells, run_name, short_name  # noqa: F401 (re-exported)
from ..errors import ThreePhaseError
from .jobs import add_executor_options, executor_options, still_running
from ..presets import CPU_MODEL, PAPER_MODELS, PRESETS, paper_row, preset_config
from ..records import atomic_write_bytes, atomic_write_text
from ..stats import paired_differences

TABLE3_VARIANTS = ("three-phase", "joint", "ft")
VARIANT_TITLES = {"three-phase": "3-Phase", "joint": "Joint", "dae-ft": "DAE+FT", "cl-ft": "CL+FT",
                  "extra-imb": "Extra Imb.", "no-imb": "No Imb.", "ft": "FT", "logreg": "LogReg",
                  "setfit": "SetFit"}
PAPER_DATASETS = ("snips", "snips2", "sst2", "sst5", "ag_news", "imdb")
MODEL_ALIASES = {"roberta": PAPER_MODELS["roberta"], "roberta-base": PAPER_MODELS["roberta"],
                 "minilm": PAPER_MODELS["minilm"], "all-minilm-l12-v2": PAPER_MODELS["minilm"],
                 "all-minilm-l6-v2": CPU_MODEL}

# The paper's accuracy (%), test split. Table 3: (dataset, model family) -> (3-Phase, Joint, FT).
PAPER_TABLE3 = {
    ("snips", "roberta"): (99.81, 94.92, 91.01), ("snips", "minilm"): (100.00, 91.98, 92.89),
    ("snips2", "roberta"): (98.29, 98.0, 97.57), ("snips2", "minilm"): (98.57, 98.57, 93.86),
    ("sst2", "roberta"): (95.07, 93.12, 90.28), ("sst2", "minilm"): (93.89, 90.04, 88.21),
    ("sst5", "roberta"): (56.79, 53.88, 52.27), ("sst5", "minilm"): (54.77, 52.25, 49.24),
    ("ag_news", "roberta"): (95.08, 94.82, 92.47), ("ag_news", "minilm"): (94.83, 94.28, 89.57),
    ("imdb", "roberta"): (99.0, 95.07, 91.0),
}
# Table 4: dataset -> (base model family, accuracies in the order 3-Phase, Joint, DAE+FT, CL+FT, Extra, No Imb., FT).
PAPER_TABLE4 = {
    "snips": ("minilm", (100.00, 91.98, 98.05, 99.81, 99.92, 99.88, 92.89)),
    "snips2": ("minilm", (98.57, 98.57, 94.14, 97.86, 98.00, 97.85, 93.86)),
    "sst2": ("roberta", (95.07, 93.12, 83.72, 94.72, 94.50, 94.04, 90.28)),
    "sst5": ("roberta", (56.79, 53.88, 46.06, 56.52, 56.24, 55.84, 52.27)),
    "ag_news": ("roberta", (95.08, 94.82, 91.53, 95.24, 95.01, 94.26, 92.47)),
    "imdb": ("roberta", (99.00, 95.07, 93.00, 94.86, 97.00, 94.76, 91.10)),
}
TABLE4_VARIANTS = ("three-phase", "joint", "dae-ft", "cl-ft", "extra-imb", "no-imb", "ft")


def _family(model: str) -> str:
    return "roberta" if "roberta" in model.lower() else "minilm"


def paper_accuracy(table: int, dataset: str, model: str, variant: str) -> float | None:
    """The paper's accuracy (%) for a cell, or None where the paper has none (Table 3 keys on the model family)."""
    dataset = paper_row(dataset)
    if table == 3:
        row = PAPER_TABLE3.get((dataset, _family(model)))
        return row[TABLE3_VARIANTS.index(variant)] if row and variant in TABLE3_VARIANTS else None
    row = PAPER_TABLE4.get(dataset)
    return row[1][TABLE4_VARIANTS.index(variant)] if row and variant in TABLE4_VARIANTS else None


def parse_seeds(text: str | int) -> list[int]:
    """``"3"`` -> seeds 0, 1, 2; ``"0,1,4"`` -> those seeds."""
    text = str(text).strip()
    try:
        if "," in text:
            return sorted({int(s) for s in text.split(",") if s.strip()})
        count = int(text)
    except ValueError:
        raise ThreePhaseError(f"Cannot read --seeds {text!r}: give a count (--seeds 3) or a list (--seeds 0,1,4).") from None
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


def load_records(records: str | os.PathLike | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records from a list, a ``<out>`` folder (``runs/*/results.json``) or a folder of run folders."""
    if not isinstance(records, (str, os.PathLike)):
        return list(records)
    root = Path(records)
    files = sorted(root.glob("runs/*/results.json")) or sorted(root.glob("*/results.json"))
    return [json.loads(f.read_text()) for f in files]


def aggregate(records, table: int = 4, metric: str = "accuracy") -> pd.DataFrame:
    """One row per (dataset, model, variant): seeds, n, mean and std of ``metric`` (%; the paper reports accuracy),
    the paper's number, the difference, and the paired difference to ``ft`` over shared seeds with its 95% interval
    and paired t-test (``vs_ft``, ``ci_low``, ``ci_high``, ``covers_zero``, ``p_value``; see :mod:`threephase.stats`).

    ``std`` is the sample standard deviation (NaN for one seed). Rows follow the paper's order; variants outside the
    table (the ``logreg`` baseline) follow it when their records are present.
    """
    records = load_records(records)
    rows = [{"dataset": r["dataset"], "model": short_name(r["model"]), "variant": r["variant"], "seed": r["seed"],
             "score": 100 * r[metric], "full_model": r["model"], "preset": r.get("preset")} for r in records]
    columns = ["dataset", "model", "variant", "seeds", "n", "mean", "std", "paper", "diff", "vs_ft", "ci_low",
               "ci_high", "covers_zero", "p_value", "paper_setting"]
    variants = list(TABLE3_VARIANTS if table == 3 else TABLE4_VARIANTS)
    variants += [v for v in VARIANT_TITLES if v not in variants and any(r["variant"] == v for r in rows)]
    rows = [r for r in rows if r["variant"] in variants]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    groups = frame.groupby(["dataset", "model", "variant"], sort=False)
    df = groups["score"].agg(["count", "mean", "std"]).rename(columns={"count": "n"}).reset_index()
    df["seeds"] = groups["seed"].agg(lambda s: ",".join(map(str, sorted(s)))).to_numpy()
    full = groups["full_model"].first().to_numpy()
    df["paper"] = [paper_accuracy(table, d, m, v) if metric == "accuracy" else None
                   for d, m, v in zip(df["dataset"], full, df["variant"])]
    df["paper"] = df["paper"].astype(float)
    df["diff"] = df["mean"] - df["paper"]
    # The paper's numbers are a fair reference only for a run of the paper's preset with one of its models.
    df["paper_setting"] = [p == "paper" and m in PAPER_MODELS.values()
                           for p, m in zip(groups["preset"].first().to_numpy(), full)]
    paired = paired_differences(frame.assign(score=frame["score"] / 100).to_dict("records"), metric="score")
    df = df.merge(paired.rename(columns={"diff": "vs_ft"}).drop(columns="pairs"), how="left",
                  on=["dataset", "model", "variant"])
    order = {d: i for i, d in enumerate(PAPER_DATASETS)}
    df["_d"], df["_v"] = df["dataset"].map(lambda d: order.get(paper_row(d), 99)), df["variant"].map(variants.index)
    df = df.sort_values(["_d", "dataset", "model", "_v"]).drop(columns=["_d", "_v"]).reset_index(drop=True)
    df.attrs["table"] = table
    return df[columns]


def _score(row) -> str:
    std = "–" if pd.isna(row["std"]) else f"{row['std']:.2f}"
    return f"{row['mean']:.2f} ± {std}"


def _vs_ft(row) -> str:
    if pd.isna(row.get("vs_ft")):
        return ""
    interval = "" if pd.isna(row["ci_low"]) else f" [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
    return f"{row['vs_ft']:+.2f}{interval}{' †' if row['covers_zero'] else ''}"


def to_wide(df: pd.DataFrame) -> pd.DataFrame:
    """The paper's layout: one row per (dataset, model), columns ``<variant> mean|std|paper|diff`` per variant, and
    for variants other than ``ft`` the paired difference to FT and its interval (``vs_ft|ci_low|ci_high``)."""
    variants = [v for v in VARIANT_TITLES if v in set(df["variant"])]
    stats_of = lambda v: ("mean", "std", "paper", "diff") + (() if v == "ft" else ("vs_ft", "ci_low", "ci_high"))  # noqa: E731
    wide = df.pivot(index=["dataset", "model"], columns="variant",
                    values=["mean", "std", "paper", "diff", "vs_ft", "ci_low", "ci_high"])
    wide = wide.reindex(df[["dataset", "model"]].drop_duplicates().itertuples(index=False, name=None))
    wide.columns = [f"{v} {stat}" for stat, v in wide.columns]
    return wide[[f"{v} {s}" for v in variants for s in stats_of(v)]].astype(float).round(2).reset_index()


def to_markdown(df: pd.DataFrame) -> str:
    """Markdown: one table per (dataset, model), a row per variant in the paper's order, with the mean ± std over
    seeds, the paper's number and the difference to it, and the paired difference to FT with its 95% interval."""
    lines = []
    for (dataset, model), group in df.groupby(["dataset", "model"], sort=False):
        lines += [f"**{dataset}**, {model}", "", "| variant | accuracy | paper | Δ | vs FT [95% CI] |",
                  "| --- | --- | --- | --- | --- |"]
        for _, row in group.iterrows():
            paper, diff = ("", "") if pd.isna(row["paper"]) else (f"{row['paper']:.2f}", f"{row['diff']:+.2f}")
            lines.append(f"| {VARIANT_TITLES.get(row['variant'], row['variant'])} | {_score(row)} | {paper} | {diff} | "
                         f"{_vs_ft(row)} |")
        lines.append("")
    seeds = ", ".join(sorted(set(df["seeds"]))) if len(df) else "none"
    table = df.attrs.get("table", "")
    lines += [f"Accuracy (%) on the test split, mean ± std over seeds ({seeds}); paper = the paper's Table "
              f"{table}; Δ = ours − paper. vs FT = the mean over seeds of (variant − FT) on the same seed, with its "
              "95% interval; † marks an interval that covers 0, a difference that seed-to-seed variation could "
              "explain."]
    return "\n".join(lines) + "\n"


def plot_variants(df: pd.DataFrame, title: str | None = None):
    """Point plot: mean accuracy per variant with its 95% interval over seeds, per (dataset, model). The axis spans
    the data, not 0-100, so that the gaps can be judged; the paper's numbers appear (black bars) only for runs of the
    paper's preset with one of the paper's models."""
    from matplotlib.figure import Figure

    variants = [v for v in VARIANT_TITLES if v in set(df["variant"])]
    groups = list(df[["dataset", "model"]].drop_duplicates().itertuples(index=False, name=None))
    fig = Figure(figsize=(max(6.0, 1.0 + 0.55 * len(variants) * len(groups)), 4.2), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(len(variants), 1)
    shown_paper = False
    for i, variant in enumerate(variants):
        sub = df[df["variant"] == variant].set_index(["dataset", "model"]).reindex(groups)
        x = [g + (i - (len(variants) - 1) / 2) * width for g in range(len(groups))]
        half = [mean_interval_halfwidth(s, n) for s, n in zip(sub["std"], sub["n"])]
        ax.errorbar(x, sub["mean"], yerr=half, fmt="o", capsize=3, label=VARIANT_TITLES[variant])
        paper = sub["paper"].where(sub["paper_setting"].fillna(False).astype(bool))
        if paper.notna().any():
            ax.plot(x, paper, "k_", markersize=12, markeredgewidth=2, label=None if shown_paper else "paper")
            shown_paper = True
    ax.set_xticks(range(len(groups)), [f"{d}\n{m}" for d, m in groups])
    ax.set_ylabel("test accuracy (%)")
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or f"Table {df.attrs.get('table', '')}: mean and 95% interval over seeds")
    return fig


def mean_interval_halfwidth(std: float, n: int) -> float:
    """Half the width of the Student-t 95% interval of a mean over ``n`` seeds (0 when it cannot be computed)."""
    if pd.isna(std) or n < 2:
        return 0.0
    return float(scipy_stats.t.ppf(0.975, n - 1) * std / n ** 0.5)


def write_tables(records, table: int, out: str | os.PathLike) -> pd.DataFrame:
    """Aggregate ``records`` and write ``<out>/table<N>.md``, ``.csv`` and ``.png`` atomically."""
    df = aggregate(records, table)
    if df.empty:
        raise ThreePhaseError(f"No finished runs of Table {table} under {str(out)!r}: run the grid first.")
    out = Path(out)
    atomic_write_text(out / f"table{table}.md", to_markdown(df))
    atomic_write_text(out / f"table{table}.csv", to_wide(df).to_csv(index=False))
    buffer = io.BytesIO()
    plot_variants(df).savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(out / f"table{table}.png", buffer.getvalue())
    return df


EPILOG = """\
grid:      Table 3: three-phase, joint, ft × models (paper preset: roberta-base and all-MiniLM-L12-v2, IMDB roberta
           only); Table 4: the 7 variants with the paper's base model per dataset. The cpu preset uses
           all-MiniLM-L6-v2 everywhere. --datasets glue_sst2 runs the paper's SST-2 (GLUE's; sst2 is the
           sentence-level one); both take the paper's sst2 row.
output:    <out>/runs/<dataset>__<model>__<variant>__seed<k>/ (config.json, metrics.json, results.json,
           classifier/), <out>/logs/<same name>.log (or, with --notebooks, <out>/notebooks/<same name>.ipynb:
           the executed notebook), <out>/table<N>.md, .csv, .png (mean ± std over seeds, the paper's number and
           the difference)
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
    (:class:`~threephase.executors.ExecutorOptions`) each cell is a submitit job instead, and the cells that have
    not ended go to ``executor.queued``."""
    from tqdm.auto import tqdm

    parameters = {"device": device} if device else {}
    if executor is not None:
        from .jobs import run_cells_as_jobs

        return run_cells_as_jobs(runs, out, overrides, overwrite, parameters, executor)
    failed = []
    with tqdm(total=len(runs), desc=desc, unit="run") as bar:
        for result in run_cells(runs, out, overrides, overwrite, parameters, notebooks, jobs):
            bar.update()
            extra = f" in {result['seconds']:.0f} s" if "seconds" in result else ""
            tqdm.write(f"{result['status']:>7}  {result['name']}{extra}")
            if result["status"] == "failed":
                failed.append(f"{result['name']} ({result['error'].splitlines()[0]}; see {result['log']})")
    return failed


def failure(failed: list[str]) -> ThreePhaseError:
    return ThreePhaseError(f"{len(failed)} run(s) failed: " + "; ".join(failed) +
                           ". Fix the cause and rerun the same command: finished runs are skipped.")


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
                  f"{out}/table{args.table}.md, .csv and .png")
