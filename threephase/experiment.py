"""When do the phases help? A CPU experiment over the settings in which the paper says phases 1 and 2 should help.

``python -m threephase experiment --out reproductions/phases-help`` runs, for each *setting*, every variant that
the setting can tell apart, on the offline sst2, ag_news and snips2 (each setting on those where its question can be
asked within about 2 hours on 2 CPU cores), with the ``cpu`` preset at the sizes of :data:`SIZES`, over 5 seeds, through the reproduction driver (:func:`threephase.reproduce.run_grid`). Then it writes one table: each
variant's accuracy and its paired difference to ``ft`` (same data draw, same seed) with a 95% interval.

The settings (:data:`SETTINGS`):

* ``few-shot``: 8 labelled examples per class, balanced (sst2, snips2; ag_news's long texts did not fit the 2 hours:
  ``--settings few-shot --datasets ag_news`` adds it).
* ``unlabelled``: the same labels, and phase 1 (and Joint's DAE part) also reads 256 unlabelled training texts,
  once each (sst2).
* ``long-tail``: a long-tailed training split (largest / smallest class ≈ 10) of 80 examples, so that the resize
  (eq. 4-5) acts; ``no-imb`` is the same variant without the resize, ``extra-imb`` with a larger one (snips2:
  the dataset with the most classes, so that the tail has a shape; ``--settings long-tail --datasets ag_news,snips2`` adds
  a second).

On balanced classes the resize leaves every class as it is, so ``extra-imb`` and ``no-imb`` train exactly what
``three-phase`` trains (tested): they run in ``long-tail`` only. In ``unlabelled`` only the variants with a phase 1
change; ``ft`` and ``logreg`` run there again as its paired reference (they repeat ``few-shot``'s runs).
``setfit`` joins ``few-shot``, the setting SetFit was made for, when its extra is installed.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .config import VARIANTS, parse_set_options
from .errors import ThreePhaseError
from .presets import CPU_MODEL
from .records import atomic_write_bytes, atomic_write_text
from .reproduce import (VARIANT_TITLES, absolute_paths, aggregate, check_grid, parse_seeds, report,
                        run_grid, split_list, variant_columns)

logger = logging.getLogger(__name__)

DATASETS = ("sst2", "ag_news", "snips2")
WITH_PHASE1 = ("three-phase", "joint", "dae-ft")
DRAW_KEYS = ("data.train_per_class", "data.max_train_samples", "data.max_unlabelled_samples", "data.min_per_class")
BALANCED = ("three-phase", "joint", "dae-ft", "cl-ft", "ft", "logreg")


@dataclass(frozen=True)
class Setting:
    title: str
    overrides: dict[str, Any]
    variants: tuple[str, ...]
    question: str = ""
    datasets: tuple[str, ...] = DATASETS  # where the setting's question can be asked within the CPU budget


SETTINGS: dict[str, Setting] = {
    "few-shot": Setting("balanced few-shot (8 per class)", {"data.train_per_class": 8}, BALANCED + ("setfit",),
                        "Do phases 1 and 2 help when labels are few and the classes balanced?", ("sst2", "snips2")),
    "unlabelled": Setting(
        "few-shot + 256 unlabelled texts for phase 1",
        # One pass over 16 + 256 texts gives phase 1 about four times the steps of few-shot's four passes over 16.
        {"data.train_per_class": 8, "data.unlabelled": "train", "data.max_unlabelled_samples": 256,
         "dae.num_train_epochs": 1},
        WITH_PHASE1 + ("ft", "logreg"), "Does phase 1 gain from in-domain texts without labels?", ("sst2",)),
    "long-tail": Setting(
        "long-tailed (ρ = 10, 80 examples)",
        # Five batches: half the repetitions give about the steps of few-shot snips2 (56 examples).
        {"data.imbalance_factor": 10, "data.max_train_samples": 80, "data.min_per_class": 4,
         "dae.num_train_epochs": 2, "cl.pair_multiplier": 2, "ft.num_train_epochs": 8, "ft.min_epochs": 3},
        tuple(v for v in VARIANT_TITLES if v in VARIANTS and v != "setfit"),
        "Does the resize before phase 2 help on imbalanced classes (three-phase vs no-imb vs extra-imb)?",
        ("snips2",)),
}

# The experiment's sizes atop the cpu preset: small enough for ~2 hours on 2 cores over the whole grid.
SIZES: dict[str, dict[str, Any]] = {
    # A few-shot split is one or two batches: the phases get their steps from repetitions (4 passes of phase 1, 4x
    # the cpu preset's pairs) and phase 3 from epochs, so that no phase is a step or two of warm-up.
    "full": {"max_seq_length": 48, "logging_steps": 50, "data.max_validation_samples": 48,
             "data.max_test_samples": 300, "dae.num_train_epochs": 4, "cl.pair_multiplier": 4,
             "ft.num_train_epochs": 15, "ft.min_epochs": 5, "ft.patience": 3},
    # The smallest form, which CI runs: it proves the grid, the aggregation and the files, not any result.
    "smallest": {"max_seq_length": 24, "logging_steps": 50, "data.max_validation_samples": 16,
                 "data.max_test_samples": 32, "data.max_unlabelled_samples": 16, "data.max_train_samples": 24,
                 "data.train_per_class": 3, "data.min_per_class": 2, "dae.num_train_epochs": 1, "cl.pair_multiplier": 1,
                 "ft.num_train_epochs": 1, "ft.min_epochs": 1},
}


@dataclass
class Plan:
    """The cells of each setting and the overrides they share."""

    cells: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


def plan(settings=None, datasets=None, seeds: str | int = 5, size: str = "full", variants=None,
         model: str = CPU_MODEL, extra: dict[str, Any] | None = None) -> Plan:
    """The grid: for each setting, (dataset × its variants × seeds) cells and the overrides of that setting."""
    if size not in SIZES:
        raise ThreePhaseError(f"Unknown size {size!r}. Choose one of: {', '.join(SIZES)}.")
    result = Plan()
    for name in settings or SETTINGS:
        if name not in SETTINGS:
            raise ThreePhaseError(f"Unknown setting {name!r}. Choose one of: {', '.join(SETTINGS)}.")
        setting = SETTINGS[name]
        chosen = [v for v in setting.variants if variants is None or v in variants]
        if "setfit" in chosen:
            try:
                from .baselines import require_extras  # on use: --help must not wait for the training stack

                require_extras("setfit")
            except ThreePhaseError as missing:
                logger.warning("%s: leaving out setfit. %s", name, missing)
                chosen.remove("setfit")
        if "ft" not in chosen:  # every difference is measured against ft
            chosen.append("ft")
        # In the full size the setting's own choices beat the size's budget; the smallest form caps everything. A
        # size's draw caps apply only where the setting draws that way (per class, or a proportional total).
        budget = {k: v for k, v in SIZES[size].items() if k not in DRAW_KEYS}
        draws = {k: v for k, v in SIZES[size].items() if k in DRAW_KEYS and k in setting.overrides}
        ordered = {**setting.overrides, **budget} if size == "smallest" else {**budget, **setting.overrides}
        result.overrides[name] = absolute_paths({**ordered, **draws, **(extra or {})})
        result.cells[name] = [{"dataset": d, "model": model, "variant": v, "seed": s, "preset": "cpu"}
                              for d in datasets or setting.datasets for v in chosen for s in parse_seeds(seeds)]
    return result


def summarize(out: str | os.PathLike, settings=None) -> pd.DataFrame:
    """One row per (setting, dataset, variant): accuracy mean/std (%) over seeds and the paired difference to
    ``ft`` with its 95% interval, from the run records under ``<out>/<setting>/``."""
    frames = []
    for name in settings or SETTINGS:
        df = aggregate(Path(out) / name, table=4)
        if not df.empty:
            frames.append(df.drop(columns=["paper", "diff", "paper_setting"]).assign(setting=name))
    if not frames:
        raise ThreePhaseError(f"No finished runs under {str(out)!r}: run the experiment first.")
    df = pd.concat(frames, ignore_index=True)
    return df[["setting"] + [c for c in df.columns if c != "setting"]]


def _cell(row) -> str:
    text = f"{row['mean']:.1f}"
    if row["variant"] != "ft" and not pd.isna(row["vs_ft"]):
        interval = "" if pd.isna(row["ci_low"]) else f" [{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]"
        text += f" ({row['vs_ft']:+.1f}{interval}{'' if row['covers_zero'] else ' ✱'})"
    return text


def to_markdown(df: pd.DataFrame) -> str:
    """Rows: setting × dataset; columns: variants; each cell: accuracy (%) and, but for FT, the paired difference
    to FT with its 95% interval, starred when the interval excludes 0."""
    lines = variant_columns(df, ["setting", "dataset"], _cell)
    seeds = ", ".join(sorted(set(df["seeds"])))
    lines += ["", f"Test accuracy (%), mean over seeds ({seeds}). In brackets: the mean over seeds of (variant − FT) "
              "on the same seed and data draw, in points, with its 95% Student-t interval; ✱ marks an interval that "
              "excludes 0 (a gain, or a loss, that seed-to-seed variation does not explain). An empty cell: the "
              "setting does not run that variant.", ""]
    lines += [f"- `{name}`: {SETTINGS[name].title}. {SETTINGS[name].question}"
              for name in dict.fromkeys(df["setting"]) if name in SETTINGS]
    return "\n".join(lines) + "\n"


def plot(df: pd.DataFrame):
    """The paired difference to FT with its 95% interval, one panel per setting, a point per (dataset, variant)."""
    from matplotlib.figure import Figure

    settings = list(dict.fromkeys(df["setting"]))
    diffs = df[df["variant"] != "ft"]
    variants = [v for v in VARIANT_TITLES if v in set(diffs["variant"])]
    fig = Figure(figsize=(4.2 * len(settings), 4.0), layout="constrained")
    axes = fig.subplots(1, len(settings), sharey=True, squeeze=False)[0]
    for ax, setting in zip(axes, settings):
        sub = diffs[diffs["setting"] == setting]
        datasets = list(dict.fromkeys(sub["dataset"]))
        width = 0.8 / max(len(variants), 1)
        for i, variant in enumerate(variants):
            rows = sub[sub["variant"] == variant].set_index("dataset").reindex(datasets)
            x = [d + (i - (len(variants) - 1) / 2) * width for d in range(len(datasets))]
            low = (rows["vs_ft"] - rows["ci_low"]).fillna(0)
            high = (rows["ci_high"] - rows["vs_ft"]).fillna(0)
            ax.errorbar(x, rows["vs_ft"], yerr=[low, high], fmt="o", capsize=3, color=f"C{i}",
                        label=VARIANT_TITLES[variant])
        ax.axhline(0, color="black", linewidth=1)
        ax.set_xticks(range(len(datasets)), datasets)
        ax.set_title(setting)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy − FT (points), 95% interval")
    axes[-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def write_summary(out: str | os.PathLike, settings=None) -> pd.DataFrame:
    """Write ``<out>/phases_help.md``, ``.csv`` and ``.png`` (atomically) from the finished runs."""
    df = summarize(out, settings)
    out = Path(out)
    atomic_write_text(out / "phases_help.md", to_markdown(df))
    atomic_write_text(out / "phases_help.csv", df.round(3).to_csv(index=False))
    buffer = io.BytesIO()
    plot(df).savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(out / "phases_help.png", buffer.getvalue())
    return df


EPILOG = """\
settings:  few-shot (8 labels per class; with setfit when installed), unlabelled (the same + 256 unlabelled texts
           for phase 1), long-tail (ρ = 10, 80 examples; with no-imb and extra-imb); the cpu preset at the
           experiment's sizes
output:    <out>/<setting>/runs/<run>/ and logs/, as reproduce writes them; <out>/phases_help.md, .csv, .png
rerun:     the same command skips finished runs and resumes killed ones

examples:
  python -m threephase experiment --out reproductions/phases-help                 # the book's run, ~1.5 h on 2 cores
  python -m threephase experiment --size smallest --datasets sst2 --seeds 2       # minutes: what CI runs
  python -m threephase experiment --settings few-shot --set data.train_per_class=32 --out reproductions/fs32
"""


def add_experiment_parser(commands) -> None:
    parser = commands.add_parser("experiment", help="when do the phases help? (the book's CPU experiment)",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", help=f"comma-separated (default: {','.join(SETTINGS)})")
    parser.add_argument("--datasets", help=f"comma-separated (default: {','.join(DATASETS)})")
    parser.add_argument("--variants", help="comma-separated: only these of each setting's variants (ft always runs)")
    parser.add_argument("--seeds", default="5", help="a count (5 = seeds 0-4) or a list; default 5")
    parser.add_argument("--size", default="full", choices=tuple(SIZES), help="full (the book's) or smallest (CI's)")
    parser.add_argument("--model", default=CPU_MODEL, help="the body (default: all-MiniLM-L6-v2)")
    parser.add_argument("--out", default="reproductions/phases-help", help="output folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting in every run, after the setting's own (repeatable)")
    parser.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="rerun runs that already have results.json")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="run N cells at once, each in its own process")


def experiment_command(args: argparse.Namespace) -> int:
    settings = split_list(args.settings)
    grid = plan(settings, split_list(args.datasets), args.seeds, args.size, split_list(args.variants), args.model,
                parse_set_options(args.set))
    for name, cells in grid.cells.items():
        check_grid(cells, grid.overrides[name], args.jobs)
    failed = []
    for name, cells in grid.cells.items():
        failed += run_grid(cells, Path(args.out) / name, grid.overrides[name], desc=name, device=args.device,
                           overwrite=args.overwrite, jobs=args.jobs)
    return report(failed, lambda: write_summary(args.out, settings), to_markdown,
                  f"{args.out}/phases_help.md, .csv and .png")
