"""The report of ``compare``: each method against FT on the user's data, in a table, a sentence per verdict and a
forest plot, from the run records.

The statistics are the book experiment's own (:func:`threephase.stats.verdicts`, one implementation): paired
differences to FT on (draw, seed), intervals over draws, Holm over the methods compared, the minimum detectable
difference and an equivalence margin. This module only gathers the records, adds what the runs cost and which ones
failed, and writes ``compare.md``, ``compare.csv``, ``compare.png`` and ``compare_runs.jsonl``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ThreePhaseError
from ..notebook import save_runs
from ..records import atomic_write_text, write_figure
from .tables import VARIANT_TITLES, load_records

BASELINE = "ft"
METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
FILES = ("compare.md", "compare.csv", "compare.png", "compare_runs.jsonl")


def title(variant: str) -> str:
    return VARIANT_TITLES.get(variant, variant)


def read_records(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The finished runs of a comparison: ``<out>/runs/*/results.json``."""
    return load_records(out) if Path(out, "runs").is_dir() else []


def _stat_records(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"variant": r["variant"], "seed": r["seed"], "data_seed": r.get("data_seed", 0),
             **{m: r[m] for m in METRICS}} for r in records]


def costs(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per method: finished runs, their mean score (%) per metric, and seconds per run and in all."""
    rows = [{"variant": r["variant"], "seconds": r.get("wall_time_s", math.nan),
             **{m: 100 * r[m] for m in METRICS}} for r in records]
    if not rows:
        return pd.DataFrame(columns=["variant", "runs", *METRICS, "seconds_per_run", "seconds"])
    groups = pd.DataFrame(rows).groupby("variant", sort=False)
    df = groups[list(METRICS)].mean()
    df["runs"] = groups.size()
    df["seconds_per_run"] = groups["seconds"].mean()
    df["seconds"] = groups["seconds"].sum()
    return df.reset_index()


def compare_table(records: Sequence[Mapping[str, Any]], variants: Sequence[str], *, planned: int,
                  failed: Mapping[str, Sequence[str]] | None = None, margin: float | None = None) -> pd.DataFrame:
    """One row per (method other than FT, metric): the columns of :func:`threephase.stats.verdicts` (one Holm
    family per metric: the methods asked for, each against FT), the method's and FT's mean score (%), its finished
    and failed runs out of ``planned``, what its runs cost, and the verdict in one sentence.

    ``failed`` maps a method to the lines of its failed runs. A method with no finished run (or an FT with none)
    has the verdict ``failed``: no difference can be measured."""
    from ..stats import verdict_sentence, verdicts

    failed = failed or {}
    compared = [v for v in variants if v != BASELINE]
    if not compared:
        raise ThreePhaseError("compare needs at least one method besides ft: ft is the baseline of every comparison.")
    cost = costs(records).set_index("variant")
    kwargs = {} if margin is None else {"margin": margin}  # None: the book's margin, declared with the statistics
    frames = []
    for metric in METRICS:
        df = verdicts(_stat_records(records), [(v, BASELINE) for v in compared], metric=metric, **kwargs)
        frames.append(df.set_index("variant").reindex(compared).reset_index().assign(metric=metric,
                                                                                     baseline=BASELINE))
    df = pd.concat(frames, ignore_index=True)
    runs = lambda v: int(cost["runs"].get(v, 0))  # noqa: E731
    df["mean"] = [cost[m].get(v, math.nan) for v, m in zip(df["variant"], df["metric"])]
    df["baseline_mean"] = [cost[m].get(BASELINE, math.nan) for m in df["metric"]]
    df["runs"], df["planned"] = [runs(v) for v in df["variant"]], planned
    df["failed"] = [len(failed.get(v, ())) for v in df["variant"]]
    df["baseline_failed"] = len(failed.get(BASELINE, ()))
    df["seconds_per_run"] = [cost["seconds_per_run"].get(v, math.nan) for v in df["variant"]]
    df["seconds"] = [cost["seconds"].get(v, math.nan) for v in df["variant"]]
    df["baseline_seconds_per_run"] = cost["seconds_per_run"].get(BASELINE, math.nan)
    nothing = (df["runs"] == 0) | (runs(BASELINE) == 0)
    df.loc[nothing, "verdict"] = "failed"
    df["sentence"] = [_failed_sentence(row) if row["verdict"] == "failed" else verdict_sentence(row)
                      for _, row in df.iterrows()]
    return df


def _failed_sentence(row) -> str:
    who = title(row["variant"]) if row["runs"] == 0 else "FT, the baseline,"
    return (f"{who} finished no run, so its {METRICS[row['metric']]} cannot be compared: see the failed runs below, "
            "fix the cause and rerun the same command.")


def _difference(row) -> str:
    if row["verdict"] == "failed" or pd.isna(row["diff"]):
        return "–"
    interval = "" if pd.isna(row["ci_low"]) else f" [{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]"
    return f"{row['diff']:+.1f}{interval}"


def _score(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.1f}"


def _duration(seconds: float) -> str:
    if pd.isna(seconds):
        return "–"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def to_markdown(df: pd.DataFrame, about: str = "", failures: Sequence[str] = ()) -> str:
    """``compare.md``: a row per method (FT first, as the reference), the verdicts in a sentence each, the failed
    runs, and how to read it all. ``about`` describes the data, draws and seeds."""
    acc, f1 = (df[df["metric"] == m].set_index("variant") for m in METRICS)
    first = df.iloc[0]
    lines = ["# Does 3-Phase help on this data?", "", about, "",
             "| method | accuracy (%) | vs FT [95% CI] | verdict | macro-F1 (%) | vs FT [95% CI] | verdict | runs "
             "| time per run |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
             f"| {title(BASELINE)} (baseline) | {_score(first['baseline_mean'])} | | | "
             f"{_score(f1.iloc[0]['baseline_mean'])} | | | {first['planned'] - first['baseline_failed']} of "
             f"{first['planned']} | {_duration(first['baseline_seconds_per_run'])} |"]
    for variant in acc.index:
        a, f = acc.loc[variant], f1.loc[variant]
        lines.append(f"| {title(variant)} | {_score(a['mean'])} | {_difference(a)} | {a['verdict']} | "
                     f"{_score(f['mean'])} | {_difference(f)} | {f['verdict']} | {a['runs']} of {a['planned']} | "
                     f"{_duration(a['seconds_per_run'])} |")
    lines += ["", "## Verdicts", ""]
    for metric, name in METRICS.items():
        lines += [f"**{name}**", ""] + [f"- {s}" for s in df.loc[df["metric"] == metric, "sentence"]] + [""]
    if failures:
        lines += ["## Failed runs", "", "Each is missing from its method's pairs above; fix the cause and rerun the "
                  "same command: finished runs are skipped.", ""] + [f"- {line}" for line in failures] + [""]
    margin = first.get("margin", math.nan)
    lines += ["## How to read this", "",
              "Every method trains on the same draws of the data with the same seeds, so each of its runs pairs "
              "with the FT run of the same (draw, seed). vs FT is the mean paired difference in points with its 95% "
              "interval (over draws; over seeds when there is one draw); p-values are corrected with Holm's method "
              f"over the {len(acc)} method(s) compared, per metric. A verdict is *better* or *worse* when the "
              "corrected difference is significant, *equivalent* when the interval lies within the margin of "
              f"±{margin:g} points (two one-sided tests), *undecided* otherwise: the runs cannot tell, and the "
              "sentence says how many draws could. *failed* means no run of the method (or of FT) finished."
              if not pd.isna(margin) else "No statistics: no run finished."]
    return "\n".join(lines) + "\n"


def plot(df: pd.DataFrame):
    """Forest plot: each method's paired difference to FT with its 95% interval, accuracy left and macro-F1 right,
    the equivalence margin shaded around 0."""
    from matplotlib.figure import Figure

    variants = list(dict.fromkeys(df["variant"]))
    fig = Figure(figsize=(8.0, 1.4 + 0.5 * len(variants)), layout="constrained")
    axes = fig.subplots(1, len(METRICS), sharey=True, squeeze=False)[0]
    colors = {"better": "C2", "worse": "C3", "equivalent": "C0", "undecided": "0.4", "failed": "0.7"}
    for ax, (metric, name) in zip(axes, METRICS.items()):
        rows = df[df["metric"] == metric].set_index("variant").reindex(variants)
        margin = rows["margin"].dropna()
        if len(margin):
            ax.axvspan(-margin.iloc[0], margin.iloc[0], color="0.9", label=f"margin ±{margin.iloc[0]:g}")
        ax.axvline(0, color="black", linewidth=1)
        for y, (variant, row) in enumerate(rows.iterrows()):
            color = colors.get(row["verdict"], "0.4")
            if not pd.isna(row["diff"]) and row["verdict"] != "failed":
                low = row["diff"] - row["ci_low"] if not pd.isna(row["ci_low"]) else 0
                high = row["ci_high"] - row["diff"] if not pd.isna(row["ci_high"]) else 0
                ax.errorbar([row["diff"]], [y], xerr=[[low], [high]], fmt="o", color=color, capsize=4)
            ax.annotate(row["verdict"], (1.0, y), xycoords=("axes fraction", "data"), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=9, color=color)
        ax.set_yticks(range(len(variants)), [title(v) for v in variants])
        ax.set_ylim(len(variants) - 0.5, -0.5)
        ax.set_xlabel(f"{name} − FT (points)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Each method against FT: mean paired difference and 95% interval")
    return fig


def write_report(out: str | os.PathLike, df: pd.DataFrame, about: str = "", failures: Sequence[str] = ()) -> None:
    """Write ``compare.md``, ``compare.csv``, ``compare.png`` and ``compare_runs.jsonl`` into ``out``, each
    atomically."""
    out = Path(out)
    atomic_write_text(out / "compare.md", to_markdown(df, about, failures))
    atomic_write_text(out / "compare.csv", df.to_csv(index=False))
    write_figure(out / "compare.png", plot(df), dpi=120)
    if any(out.glob("runs/*/results.json")):
        save_runs(out, out / "compare_runs.jsonl")
