"""The figures of the "When do the phases help?" chapter: the forest plot of its verdicts and the long tail's draws.

Both are sized for the book's text column (650-750 px): 6.5 in × 150 dpi = 975 px wide, text at ≥ 9 pt.
"""

from __future__ import annotations

import math

import pandas as pd

COLOURS = {"better": "#1b7837", "worse": "#b2182b", "equivalent": "#2166ac", "undecided": "#555555"}
WIDTH_IN = 6.5  # inches at 150 dpi: 975 px, shown at 650-750 px in the text column (scale ≥ 0.67)


SHORT = {"long-tail-equal-pairs": "equal pairs"}


def label(row) -> str:
    """A short row label: ``three-phase vs ft, few-shot sst2``; ``dae-ft: unlabelled vs few-shot`` where the two
    sides come from different settings (the dataset is named where the setting has several)."""
    from .settings import SETTINGS

    where = SHORT.get(row["setting"], row["setting"])
    if len(SETTINGS[row["setting"]].datasets) > 1:
        where += f" {row['dataset']}"
    if row["setting"] != row["baseline_setting"]:
        return f"{row['variant']}: {where} vs {row['baseline_setting']}"
    return f"{row['variant']} vs {row['baseline']}, {where}"


def forest(df: pd.DataFrame, metric: str = "accuracy"):
    """One row per comparison of ``metric``, grouped by question: the mean paired difference (points) and its 95%
    interval, a grey band of ±mde (what the design could detect at 80% power), dashed lines at ±margin, and the
    verdict in colour at the right. Rows without paired runs read "not run yet"."""
    from matplotlib.figure import Figure
    from matplotlib.transforms import blended_transform_factory

    rows = df[df["metric"] == metric].reset_index(drop=True)
    questions = list(dict.fromkeys(rows["question"]))
    height = 0.28 * len(rows) + 0.42 * len(questions) + 1.1
    fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    ax = fig.subplots()
    y, ticks, names = 0.0, [], []
    spans = [abs(v) for v in pd.concat([rows["ci_low"], rows["ci_high"], rows["mde"]]) if math.isfinite(v)]
    limit = max([3.0] + spans) * 1.08
    margin = float(rows["margin"].dropna().iloc[0]) if rows["margin"].notna().any() else math.nan
    for question in questions:
        group = rows[rows["question"] == question]
        ax.text(0.01, y, f"{question}. {group['question_title'].iloc[0]}", fontsize=10, fontweight="bold",
                va="center", ha="left", transform=blended_transform_factory(fig.transFigure, ax.transData),
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
        y += 1
        for _, row in group.iterrows():
            ticks.append(y)
            names.append(label(row))
            if not math.isfinite(row["diff"]):
                ax.text(0, y, "not run yet", fontsize=9, va="center", ha="center", color="#555555",
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
            else:
                if math.isfinite(row["mde"]):
                    ax.fill_betweenx([y - 0.35, y + 0.35], -row["mde"], row["mde"], color="#dddddd", lw=0)
                colour = COLOURS[row["verdict"]]
                if math.isfinite(row["ci_low"]):
                    ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=colour, lw=2)
                ax.plot(row["diff"], y, "o", color=colour, ms=5)
                ax.text(limit * 1.02, y, row["verdict"], fontsize=9, color=colour, va="center", ha="left")
            y += 1
        y += 0.3
    ax.axvline(0, color="black", lw=0.8)
    if math.isfinite(margin):
        for x in (-margin, margin):
            ax.axvline(x, color="#2166ac", lw=0.8, ls="--")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(y - 0.5, -0.8)
    ax.set_yticks(ticks, names, fontsize=9)
    ax.tick_params(axis="x", labelsize=9)
    ax.set_xlabel(f"variant − baseline, points of {'accuracy' if metric == 'accuracy' else 'macro-F1'} (95% "
                  f"interval)\ngrey band: ±mde (80% power) · dashed: ±{margin:g}-point margin", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return fig


def draws_figure(sizes: pd.DataFrame):
    """The long tail's training class sizes per data draw (rows) and class (columns), the size written in each
    cell: which classes are rare changes from draw to draw. ``sizes``: index draw, columns class names."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, 0.32 * len(sizes) + 1.6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(sizes.to_numpy(float), cmap="Blues", aspect="auto", vmin=0)
    top = float(sizes.to_numpy().max())
    for i in range(sizes.shape[0]):
        for j in range(sizes.shape[1]):
            value = int(sizes.iat[i, j])
            ax.text(j, i, str(value), ha="center", va="center", fontsize=9,
                    color="white" if value > top / 2 else "black")
    ax.set_xticks(range(sizes.shape[1]), list(sizes.columns), rotation=25, ha="right", fontsize=9)
    ax.set_yticks(range(sizes.shape[0]), [f"draw {d}" for d in sizes.index], fontsize=9)
    ax.set_title("training examples per class in each data draw of the long tail", fontsize=10)
    return fig
