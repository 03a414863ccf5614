"""The tables of a reproduction, from its run records: the paper's numbers (Tables 3 and 4), :func:`aggregate` (mean
± std over seeds, the paper's number, the difference and the paired difference to FT), :func:`to_markdown`,
:func:`to_wide` (CSV), :func:`plot_variants` (PNG) and :func:`write_tables`, which writes them and the runs file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import stats as scipy_stats

from ..errors import ThreePhaseError
from ..notebook import save_runs
from ..presets import PAPER_MODELS, paper_row
from ..records import atomic_write_text, write_figure
from ..stats import paired_differences
from .cells import short_name

TABLE3_VARIANTS = ("three-phase", "joint", "ft")
VARIANT_TITLES = {"three-phase": "3-Phase", "joint": "Joint", "dae-ft": "DAE+FT", "cl-ft": "CL+FT",
                  "extra-imb": "Extra Imb.", "no-imb": "No Imb.", "ft": "FT", "logreg": "LogReg",
                  "setfit": "SetFit"}
PAPER_DATASETS = ("snips", "snips2", "sst2", "sst5", "ag_news", "imdb")

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
    seeds and the paired difference to FT with its 95% interval; the paper's number and the difference to it only
    for runs of the paper's preset with one of its models (as the figure draws them): any other run is a different
    experiment, and a Δ beside it would read as a reproduction gap."""
    lines, hidden = [], False
    for (dataset, model), group in df.groupby(["dataset", "model"], sort=False):
        comparable = bool(group["paper_setting"].fillna(False).astype(bool).any())
        hidden = hidden or not comparable
        header = "| variant | accuracy | paper | Δ | vs FT [95% CI] |" if comparable else "| variant | accuracy | vs FT [95% CI] |"
        lines += [f"**{dataset}**, {model}", "", header, "| --- " * header.count(" | ") + "| --- |"]
        for _, row in group.iterrows():
            paper, diff = ("", "") if pd.isna(row["paper"]) else (f"{row['paper']:.2f}", f"{row['diff']:+.2f}")
            cells = [VARIANT_TITLES.get(row["variant"], row["variant"]), _score(row)]
            cells += [paper, diff] if comparable else []
            lines.append(f"| {' | '.join(cells)} | {_vs_ft(row)} |")
        lines.append("")
    seeds = ", ".join(sorted(set(df["seeds"]))) if len(df) else "none"
    table = df.attrs.get("table", "")
    shown = len(df) and df["paper_setting"].fillna(False).astype(bool).any()
    notes = [f"Accuracy (%) on the test split, mean ± std over seeds ({seeds})."]
    if shown:
        notes.append(f"paper = the paper's Table {table}; Δ = ours − paper.")
    if hidden:
        notes.append(f"The paper's Table {table} appears only beside runs of the `paper` preset with one of the "
                     "paper's models; other runs are a different experiment.")
    notes.append("vs FT: the mean over seeds of (variant − FT) on the same seed, with its 95% interval; † marks an "
                 "interval that covers 0, a difference that seed-to-seed variation could explain.")
    lines.append(" ".join(notes))
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
    """Aggregate ``records`` and write ``<out>/table<N>.md``, ``.csv`` and ``.png`` atomically; when ``records``
    is a folder of runs, also ``table<N>_runs.jsonl``, every run's config and record (what notebook 05 loads, see
    :func:`threephase.notebook.saved_runs`)."""
    df = aggregate(records, table)
    if df.empty:
        raise ThreePhaseError(f"No finished runs of Table {table} under {str(out)!r}: run the grid first.")
    out = Path(out)
    atomic_write_text(out / f"table{table}.md", to_markdown(df))
    atomic_write_text(out / f"table{table}.csv", to_wide(df).to_csv(index=False))
    write_figure(out / f"table{table}.png", plot_variants(df), dpi=120)
    if isinstance(records, (str, os.PathLike)):
        save_runs(records, out / f"table{table}_runs.jsonl")
    return df

