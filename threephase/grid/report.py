"""The tables, figure and findings of the "When do the phases help?" experiment, from its run records.

:func:`summarize` reads ``<out>/<setting>/runs/*/results.json`` into one row per (setting, dataset, variant):
accuracy and macro-F1 with their paired differences to FT, 95% intervals, paired t-tests and Holm's correction.
:func:`write_summary` writes ``phases_help.md`` (the tables), ``.csv``, ``.png`` and ``phases_help_findings.md``:
the sentences with numbers that the book's chapter includes, so that its prose never retypes a number.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from ..errors import ThreePhaseError
from ..records import atomic_write_text, write_figure
from ..stats import holm, paired_differences
from .settings import SETTINGS
from .tables import VARIANT_TITLES, aggregate, load_records

METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
ALPHA = 0.05


def read_records(out: str | os.PathLike, settings=None) -> dict[str, list[dict]]:
    """Each setting's run records (``<out>/<setting>/runs/*/results.json``), read once for every table and figure."""
    return {name: load_records(Path(out) / name) for name in settings or SETTINGS}


def summarize(out: str | os.PathLike, settings=None, records: dict[str, list[dict]] | None = None) -> pd.DataFrame:
    """One row per (setting, dataset, variant): for accuracy and macro-F1 (%), the mean and std over seeds and the
    paired difference to ``ft`` with its 95% interval and paired t-test p-value, from the run records under
    ``<out>/<setting>/``. ``*_p_holm`` is the p-value after Holm's correction over every comparison to FT in the
    frame for that metric (the family the chapter reports); ``*_significant`` is ``*_p_holm`` < 0.05.
    ``records`` (from :func:`read_records`) saves reading the folder again."""
    records = read_records(out, settings) if records is None else records
    frames = []
    for name, runs in records.items():
        parts = []
        for metric in METRICS:
            df = aggregate(runs, table=4, metric=metric)
            if df.empty:
                break
            df = df.drop(columns=["paper", "diff", "paper_setting"])
            keys = ["dataset", "model", "variant", "seeds", "n"]
            parts.append(df.rename(columns={c: f"{metric}_{c}" for c in df.columns if c not in keys}))
        if parts:
            frames.append(parts[0].merge(parts[1], on=["dataset", "model", "variant", "seeds", "n"])
                          .assign(setting=name))
    if not frames:
        raise ThreePhaseError(f"No finished runs under {str(out)!r}: run the experiment first.")
    df = pd.concat(frames, ignore_index=True)
    for metric in METRICS:
        df[f"{metric}_p_holm"] = holm(df[f"{metric}_p_value"])
        df[f"{metric}_significant"] = df[f"{metric}_p_holm"] < ALPHA
    df = df.merge(training_facts(records), how="left", on=["setting", "dataset", "variant"])
    return df[["setting"] + [c for c in df.columns if c != "setting"]]


def training_facts(records: dict[str, list[dict]]) -> pd.DataFrame:
    """Per (setting, dataset, variant), means over seeds of what the records (from :func:`read_records`) say about
    training: phase 2's pair count, and phase 3's kept validation loss beside chance (ln K), in nats."""
    rows = []
    for name, runs in records.items():
        for r in runs:
            phases = r.get("phases", {})
            ft, cl = phases.get("ft", {}), phases.get("cl") or phases.get("joint") or {}
            rows.append({"setting": name, "dataset": r["dataset"], "variant": r["variant"],
                         "pairs": cl.get("num_pairs", math.nan),
                         "validation_loss": ft.get("best_validation_loss", math.nan),
                         "chance_loss": ft.get("chance_loss", math.nan)})
    columns = ["setting", "dataset", "variant", "pairs", "validation_loss", "chance_loss"]
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame(rows).groupby(columns[:3], sort=False).mean().reset_index()


def resize_at_equal_pairs(out: str | os.PathLike, settings=None,
                          records: dict[str, list[dict]] | None = None) -> pd.DataFrame:
    """In the settings where every resize trains the same number of pairs, each resize variant's paired
    difference to ``no-imb`` (no resize), accuracy and macro-F1, Holm-corrected within this family."""
    records = read_records(out, settings) if records is None else records
    frames = []
    for name, runs in records.items():
        setting = SETTINGS.get(name)
        if setting is None or not setting.equal_pairs:
            continue
        resized = [r for r in runs if r["variant"] != "ft"]
        for metric in METRICS:
            diffs = paired_differences(resized, baseline="no-imb", metric=metric)
            frames.append(diffs.assign(setting=name, metric=metric))
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    df["p_holm"] = float("nan")
    for metric in METRICS:
        rows = df["metric"] == metric
        df.loc[rows, "p_holm"] = holm(df.loc[rows, "p_value"])
    df["significant"] = df["p_holm"] < ALPHA
    return df


def comparisons(df: pd.DataFrame) -> dict[str, int]:
    """How many intervals to FT the table reports per metric, and how many of them excludes 0 before correction."""
    counts = {}
    for metric in METRICS:
        tested = df[f"{metric}_p_value"].notna()
        counts[f"{metric}_intervals"] = int(tested.sum())
        counts[f"{metric}_uncorrected"] = int((~df.loc[tested, f"{metric}_covers_zero"].astype(bool)).sum())
        counts[f"{metric}_holm"] = int(df.loc[tested, f"{metric}_significant"].sum())
    return counts


def _score(row, metric: str) -> str:
    std = row[f"{metric}_std"]
    return f"{row[f'{metric}_mean']:.1f} ± {'–' if pd.isna(std) else f'{std:.1f}'}"


def _difference(row, metric: str) -> str:
    if row["variant"] == "ft" or pd.isna(row[f"{metric}_vs_ft"]):
        return ""
    low, high = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    interval = "" if pd.isna(low) else f" [{low:+.1f}, {high:+.1f}]"
    mark = " ✱" if row[f"{metric}_significant"] else ""
    return f"{row[f'{metric}_vs_ft']:+.1f}{interval}{mark}"


def to_markdown(df: pd.DataFrame) -> str:
    """One table per (setting, dataset), a row per variant: accuracy and macro-F1 (%) with their paired
    differences to FT and 95% intervals; ✱ where the difference survives Holm's correction."""
    lines = []
    for (name, dataset), group in df.groupby(["setting", "dataset"], sort=False):
        setting = SETTINGS.get(name)
        lines += [f"**{name}**, {dataset}: {setting.title if setting else ''}. "
                  f"{setting.question if setting else ''}", "",
                  "| variant | accuracy | vs FT [95% CI] | macro-F1 | vs FT [95% CI] |",
                  "| --- | --- | --- | --- | --- |"]
        order = {v: i for i, v in enumerate(VARIANT_TITLES)}
        for _, row in group.sort_values("variant", key=lambda v: v.map(order)).iterrows():
            lines.append(f"| {VARIANT_TITLES.get(row['variant'], row['variant'])} | {_score(row, 'accuracy')} | "
                         f"{_difference(row, 'accuracy')} | {_score(row, 'macro_f1')} | "
                         f"{_difference(row, 'macro_f1')} |")
        lines.append("")
    counts = comparisons(df)
    seeds = ", ".join(sorted(set(df["seeds"])))
    lines += [f"Test accuracy and macro-F1 (%), mean ± std over seeds ({seeds}), one data draw. vs FT: the mean over "
              "seeds of (variant − FT) on the same seed and data draw, in points, with its 95% Student-t interval. "
              f"The tables hold {counts['accuracy_intervals']} such intervals per metric; at the 95% level chance "
              f"alone would exclude 0 from about {ALPHA * counts['accuracy_intervals']:.1f} of them. ✱ marks a "
              "difference that stays significant after Holm's correction over all of them (paired t-test, family-"
              f"wise error 5%). Before the correction, {counts['accuracy_uncorrected']} accuracy and "
              f"{counts['macro_f1_uncorrected']} macro-F1 intervals exclude 0; after it, {counts['accuracy_holm']} and "
              f"{counts['macro_f1_holm']} differences remain."]
    return "\n".join(lines) + "\n"


def plot(df: pd.DataFrame):
    """The paired difference to FT with its 95% interval, one column per setting, accuracy above and macro-F1
    below, a point per (dataset, variant); filled where the difference survives Holm's correction."""
    from matplotlib.figure import Figure

    settings = list(dict.fromkeys(df["setting"]))
    diffs = df[df["variant"] != "ft"]
    variants = [v for v in VARIANT_TITLES if v in set(diffs["variant"])]
    fig = Figure(figsize=(3.4 * len(settings) + 1.8, 6.4), layout="constrained")
    axes = fig.subplots(2, len(settings), sharey="row", squeeze=False)
    for row, metric in enumerate(METRICS):
        for ax, setting in zip(axes[row], settings):
            sub = diffs[diffs["setting"] == setting]
            datasets = list(dict.fromkeys(sub["dataset"]))
            width = 0.8 / max(len(variants), 1)
            for i, variant in enumerate(variants):
                rows = sub[sub["variant"] == variant].set_index("dataset").reindex(datasets)
                x = [d + (i - (len(variants) - 1) / 2) * width for d in range(len(datasets))]
                mean = rows[f"{metric}_vs_ft"]
                low, high = (mean - rows[f"{metric}_ci_low"]).fillna(0), (rows[f"{metric}_ci_high"] - mean).fillna(0)
                ax.errorbar(x, mean, yerr=[low, high], fmt="none", capsize=3, color=f"C{i}")
                significant = rows[f"{metric}_significant"].fillna(False).astype(bool)
                ax.scatter(x, mean, color=[f"C{i}" if s else "white" for s in significant], edgecolors=f"C{i}",
                           zorder=3, label=VARIANT_TITLES[variant] if row == 0 else None)
            ax.axhline(0, color="black", linewidth=1)
            ax.set_xticks(range(len(datasets)), datasets, fontsize=10)
            ax.tick_params(labelsize=10)
            if row == 0:
                ax.set_title(setting, fontsize=11)
            ax.grid(axis="y", alpha=0.3)
        axes[row][0].set_ylabel(f"{METRICS[metric]} − FT (points)", fontsize=10)
    first = {}  # every column labels its points: one legend entry per variant, in the tables' order
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            first.setdefault(label, handle)
    labels = [VARIANT_TITLES[v] for v in variants if VARIANT_TITLES[v] in first]
    fig.legend([first[label] for label in labels], labels, loc="outside right upper", fontsize=10,
               title="filled: Holm-significant", title_fontsize=9)
    return fig


def _signed(value: float, low: float, high: float) -> str:
    interval = "" if pd.isna(low) else f" [{low:+.1f}, {high:+.1f}]"
    return f"{value:+.1f}{interval}"


def findings(df: pd.DataFrame, resize: pd.DataFrame) -> str:
    """The chapter's quoted numbers as Markdown sentences, from the summary frames (nothing retyped)."""
    title = lambda v: VARIANT_TITLES.get(v, v)  # noqa: E731
    lines = []
    for (name, dataset), group in df.groupby(["setting", "dataset"], sort=False):
        if not (group["variant"] == "ft").any():
            lines.append(f"- **{name}**, {dataset}: no FT runs yet, so no difference to FT.")
            continue
        ft = group[group["variant"] == "ft"].iloc[0]
        text = (f"- **{name}**, {dataset} ({ft['n']} seeds): FT scores {ft['accuracy_mean']:.1f}% accuracy "
                f"(± {ft['accuracy_std']:.1f}) and {ft['macro_f1_mean']:.1f}% macro-F1.")
        if not pd.isna(ft.get("validation_loss")):
            text += (f" Its kept validation loss averages {ft['validation_loss']:.2f} nats, against "
                     f"{ft['chance_loss']:.2f} for a guess (ln K).")
        others = group[group["variant"] != "ft"]
        if len(others):
            best = others.loc[others["accuracy_mean"].idxmax()]
            text += (f" The best by accuracy is {title(best['variant'])}, {best['accuracy_mean']:.1f}% "
                     f"({_signed(best['accuracy_vs_ft'], best['accuracy_ci_low'], best['accuracy_ci_high'])} "
                     "points against FT).")
        for metric, label in METRICS.items():
            kept = others[others[f"{metric}_significant"].fillna(False).astype(bool)]
            listed = ", ".join(
                title(r["variant"]) + " " + _signed(r[f"{metric}_vs_ft"], r[f"{metric}_ci_low"], r[f"{metric}_ci_high"])
                for _, r in kept.iterrows())
            text += f" After Holm, {label} differences to FT: {listed or 'none'}."
        if group["pairs"].notna().any() and SETTINGS.get(name) and SETTINGS[name].equal_pairs:
            text += f" Every phase-2 variant here trains on {group['pairs'].dropna().iloc[0]:.0f} pairs."
        lines.append(text)
    counts = comparisons(df)
    lines.append(f"- Over all settings the tables report {counts['accuracy_intervals']} intervals to FT per metric. "
                 f"At the 95% level, chance alone would exclude 0 from about "
                 f"{ALPHA * counts['accuracy_intervals']:.1f} of them. For accuracy {counts['accuracy_uncorrected']} "
                 f"exclude 0 before correction and {counts['accuracy_holm']} survive Holm's; for macro-F1, "
                 f"{counts['macro_f1_uncorrected']} and {counts['macro_f1_holm']}.")
    if not resize.empty:
        for name, group in resize.groupby("setting", sort=False):
            parts = []
            for _, r in group[group["metric"] == "accuracy"].iterrows():
                parts.append(f"{title(r['variant'])} − No Imb. = {_signed(r['diff'], r['ci_low'], r['ci_high'])} "
                             f"points of accuracy (Holm p = {r['p_holm']:.2f})")
            lines.append(f"- **Resize at equal steps** ({name}): " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def long_tail_figure(out: str | os.PathLike, setting: str = "long-tail", records: list[dict] | None = None):
    """Left: the long-tailed training split's class sizes, and the sizes after the resize of three-phase (max_ratio
    4) and extra-imb (20), with each class's resize ratio. Right: where FT's test predictions go (the confusion
    matrix summed over seeds). None when the setting has no FT records."""
    import numpy as np
    from matplotlib.figure import Figure

    from ..config import ImbalanceConfig
    from ..imbalance import resize_ratios, resized_sizes
    from ..viz import plot_confusion_matrix

    runs = load_records(Path(out) / setting) if records is None else records
    records = [r for r in runs if r["variant"] == "ft"]
    if not records:
        return None
    sizes = records[0]["class_sizes"]
    names = list(sizes)
    defaults = ImbalanceConfig()
    fig = Figure(figsize=(12.5, 5.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.15, 1])
    x = np.arange(len(names))
    for offset, (label, max_ratio) in zip((-0.27, 0, 0.27), (("no resize (No Imb.)", None), ("3-Phase (max 4)", 4.0),
                                                           ("Extra Imb. (max 20)", 20.0))):
        after = sizes if max_ratio is None else resized_sizes(sizes, defaults.min_ratio, max_ratio)
        bars = left.bar(x + offset, [after[n] for n in names], width=0.27, label=label)
        if max_ratio is not None:
            ratios = resize_ratios(sizes, defaults.min_ratio, max_ratio)
            left.bar_label(bars, [f"×{ratios[n]:.1f}" if ratios[n] != 1 else "" for n in names], fontsize=9)
    left.set_xticks(x, names, rotation=30, ha="right", fontsize=10)
    left.set_ylabel("training examples (after the resize)", fontsize=10)
    left.set_title("the long tail and the resize before phase 2", fontsize=11)
    left.legend(fontsize=10)
    matrix = np.sum([r["confusion_matrix"] for r in records], axis=0)
    plot_confusion_matrix(matrix, records[0]["label_names"], ax=right)
    right.set_title(f"FT's test predictions, summed over {len(records)} seeds", fontsize=11)
    return fig


def write_summary(out: str | os.PathLike, settings=None) -> pd.DataFrame:
    """Write ``<out>/phases_help.md``, ``.csv``, ``.png``, ``phases_help_resize.csv`` and
    ``phases_help_findings.md`` (atomically) from the finished runs."""
    records = read_records(out, settings)
    df = summarize(out, settings, records)
    resize = resize_at_equal_pairs(out, settings, records)
    out = Path(out)
    atomic_write_text(out / "phases_help.md", to_markdown(df))
    atomic_write_text(out / "phases_help.csv", df.round(3).to_csv(index=False))
    atomic_write_text(out / "phases_help_resize.csv", resize.round(4).to_csv(index=False))
    atomic_write_text(out / "phases_help_findings.md", findings(df, resize))
    write_figure(out / "phases_help.png", plot(df), dpi=120)
    tail = long_tail_figure(out, records=records.get("long-tail"))  # read from disk when not among settings
    if tail is not None:
        write_figure(out / "phases_help_long_tail.png", tail, dpi=110)
    return df


