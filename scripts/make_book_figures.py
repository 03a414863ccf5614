"""Draw the method page's figures into book/images/ (run once after a change; the SVGs are committed).

    python scripts/make_book_figures.py

Every number in the figures comes from the library (threephase.imbalance, threephase.finetune and the transformers
schedule that phase 3 uses), so a change there shows up in the figures on the next run. The output is
deterministic: fixed SVG ids and no date in the files. The figures are at most 6.5 in wide and the book shows them
at their own size, so the smallest text (9.5 pt) stays at least 9 pt on the page.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from threephase.config import FTConfig, ImbalanceConfig  # noqa: E402
from threephase.imbalance import crossing_point, resize_curve, resize_ratios, resized_sizes  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "book" / "images"
WORKED_EXAMPLE = {"A": 1000, "B": 300, "C": 50, "D": 5}  # the method page's worked example
SCHEDULE_EXAMPLES = 3200  # training examples of the schedule figure: 100 optimizer steps per epoch at batch 32
SMALLEST_PT = 9.5

plt.rcParams.update({
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 10, "ytick.labelsize": 10,
    "legend.fontsize": 10, "font.family": "DejaVu Sans", "svg.hashsalt": "threephase-book", "svg.fonttype": "path",
})


def _save(fig, name: str, out: Path) -> Path:
    path = out / name
    fig.savefig(path, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    plt.close(fig)
    return path


def worked_example_labels(min_ratio: float, max_ratio: float) -> dict[str, str]:
    """Each worked-example class's mark: old size -> new size, and its resize ratio, all from the library."""
    ratios = resize_ratios(WORKED_EXAMPLE, min_ratio, max_ratio)
    new_sizes = resized_sizes(WORKED_EXAMPLE, min_ratio, max_ratio)
    return {name: f"{size} → {new_sizes[name]}\n$r$ = {'1' if ratios[name] == 1 else f'{ratios[name]:.4f}'}"
            for name, size in WORKED_EXAMPLE.items()}


def resize_figure(out: Path) -> Path:
    """f(x) on a log axis, the min_ratio cut-off and the worked example's classes at their resize ratios."""
    defaults = ImbalanceConfig()
    low, high = defaults.min_ratio, defaults.max_ratio
    largest = max(WORKED_EXAMPLE.values())
    ratios = resize_ratios(WORKED_EXAMPLE, low, high)
    cut = largest ** ((high - low) / high)  # f(cut) = min_ratio: the largest class that is resized

    fig, ax = plt.subplots(figsize=(6.5, 3.9), layout="constrained")
    x = np.logspace(0, math.log10(largest), 400)
    f = resize_curve(x, largest, high)
    ax.plot(x, f, color="#2b6cb0", lw=2, label=r"$f(x) = \ln(M/x)\, r_{\max} / \ln M$")
    ax.plot(x, np.where(f >= low, f, 1.0), color="#c05621", lw=2.5, ls=(0, (5, 3)),
            label=r"resize ratio $r_k$ (1 below the cut-off)")
    ax.axhline(low, color="#2f855a", lw=1, ls=":")
    ax.text(1.15, low + 0.08, rf"$r_{{\min}}$ = {low:g}", color="#2f855a", fontsize=SMALLEST_PT)
    ax.axhline(high, color="#9b2c2c", lw=1, ls=":")
    ax.text(1.15, high + 0.06, rf"$r_{{\max}}$ = {high:g} = f(1)", color="#9b2c2c", fontsize=SMALLEST_PT)
    ax.axvspan(1, cut, color="#2f855a", alpha=0.08)
    ax.axvline(cut, color="#2f855a", lw=1)
    ax.text(cut * 1.08, 3.55, f"cut-off\n$x \\leq M^{{{(high - low) / high:g}}} \\approx {cut:.0f}$",
            color="#2f855a", fontsize=SMALLEST_PT, va="top")
    cross = crossing_point(high, largest)
    ax.plot([cross], [1.0], "o", color="grey", ms=5)
    ax.annotate(f"f = 1 at x = $M^{{{(high - 1) / high:g}}}$ ≈ {cross:.0f}", (cross, 1.0), (cross * 0.42, 0.2),
                fontsize=SMALLEST_PT, color="dimgrey", ha="center",
                arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.8})
    places = {"A": ((5, 12), "right"), "B": ((0, -36), "center"), "C": ((8, 14), "left"), "D": ((12, 6), "left")}
    labels = worked_example_labels(low, high)
    for name, size in WORKED_EXAMPLE.items():
        offset, align = places[name]
        ax.plot([size], [ratios[name]], "o", color="k", ms=6, zorder=5)
        ax.annotate(labels[name], (size, ratios[name]), offset, textcoords="offset points", fontsize=SMALLEST_PT,
                    ha=align)
    ax.set_xscale("log")
    ax.set_xlim(1, largest * 1.15)
    ax.set_ylim(0, high + 0.4)
    ax.set_xlabel("class size x (log scale)")
    ax.set_ylabel("ratio")
    ax.set_title(f"Resize curve for M = {largest}, classes {{{', '.join(map(str, WORKED_EXAMPLE.values()))}}}")
    ax.legend(loc="upper right", framealpha=0.95)
    return _save(fig, "resize_curve.svg", out)


def _box(ax, x, y, w, h, text, face, edge, size=11, weight="normal", family=None, note=None):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.12", fc=face, ec=edge, lw=1.4))
    middle = y + h / 2 + (0.2 if note else 0)
    ax.text(x + w / 2, middle, text, ha="center", va="center", fontsize=size, weight=weight, family=family)
    if note:
        ax.text(x + w / 2, middle - 0.45, note, ha="center", va="center", fontsize=SMALLEST_PT, color="#4a5568")


def _arrow(ax, start, end, color="#4a5568", style="-|>", ls="-"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=14, color=color, lw=1.5, ls=ls,
                                 shrinkA=0, shrinkB=0))


def tsdae_figure(out: Path) -> Path:
    """TSDAE's bottleneck: the decoder rebuilds the clean text from one pooled vector, never the noisy tokens."""
    fig, ax = plt.subplots(figsize=(6.5, 3.7))
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 7.4)
    ax.axis("off")
    mono = "DejaVu Sans Mono"
    blue, blue_face, grey_face, ink = "#2b6cb0", "#ebf4ff", "#edf2f7", "#4a5568"
    left, right, width = 0.2, 8.3, 4.5

    ax.text(left, 6.75, "clean text X", fontsize=SMALLEST_PT, color=ink)
    _box(ax, left, 5.7, width - 0.3, 0.95, "add this song to my list", "white", "#718096", size=SMALLEST_PT,
         family=mono)
    _arrow(ax, (2.3, 5.7), (2.3, 5.0))
    ax.text(2.45, 5.25, "delete words (deletion ratio p)", fontsize=SMALLEST_PT, color=ink)
    ax.text(left, 4.75, "noisy text X̄", fontsize=SMALLEST_PT, color=ink)
    _box(ax, left, 3.7, width - 0.3, 0.95, "add  ·  song  ·  my  ·", "white", "#718096",
         size=SMALLEST_PT, family=mono)
    _arrow(ax, (2.3, 3.7), (2.3, 2.95))
    _box(ax, left, 1.55, width - 0.3, 1.4, "encoder", grey_face, ink, weight="bold", note="the body's Transformer")

    # The bottleneck: one vector of size d between encoder and decoder.
    _arrow(ax, (4.4, 2.25), (4.95, 2.25))
    ax.text(4.7, 2.45, "pool", fontsize=SMALLEST_PT, ha="center", color=ink)
    for i in range(6):
        ax.add_patch(plt.Rectangle((5.0 + 0.28 * i, 2.05), 0.28, 0.4, fc=blue_face, ec=blue, lw=1.2))
    ax.text(5.84, 1.45, "sentence vector s\n(size d: the bottleneck)", fontsize=SMALLEST_PT, ha="center",
            va="top", color=blue, weight="bold")
    _arrow(ax, (6.75, 2.25), (right, 2.25), color=blue)
    ax.text(7.55, 3.05, "cross-attention\nsees only s", fontsize=SMALLEST_PT, ha="center", va="bottom", color=blue)

    _box(ax, right, 1.55, width, 1.4, "decoder", grey_face, ink, weight="bold", note="tied to the encoder's weights")
    _arrow(ax, (right + width / 2, 2.95), (right + width / 2, 5.7))
    ax.text(right + width / 2 + 0.15, 4.55, "token by token", fontsize=SMALLEST_PT, color=ink)
    ax.text(right, 6.75, "rebuilt clean text", fontsize=SMALLEST_PT, color=ink)
    _box(ax, right, 5.7, width, 0.95, "add this song to my list", "white", "#718096", size=SMALLEST_PT,
         family=mono)
    # The noisy tokens have no path to the decoder: a dashed line that stops at a cross.
    _arrow(ax, (4.4, 4.17), (9.6, 4.17), color="#c53030", style="-", ls=(0, (4, 3)))
    ax.text(9.75, 4.17, "✕", fontsize=12, color="#c53030", ha="center", va="center")
    ax.text(7.0, 4.35, "no path from the noisy tokens", fontsize=SMALLEST_PT, color="#c53030", ha="center")
    ax.text(right + width / 2, 1.4, "loss: $-\\log P_\\theta(X \\mid \\bar X)$",
            fontsize=SMALLEST_PT, ha="center", va="top")
    ax.text(right + width / 2, 0.8, "after phase 1 the decoder is\nthrown away; the body stays",
            fontsize=SMALLEST_PT, ha="center", va="top", color=ink, style="italic")
    return _save(fig, "tsdae_bottleneck.svg", out)


def schedule_points(config: FTConfig, num_examples: int) -> tuple[np.ndarray, int, int]:
    """Phase 3's learning rate at each optimizer step, from the library's own schedule, for one process.

    Returns the rate per step, the warm-up steps and the steps per epoch."""
    from threephase.finetune import first_epoch_warmup
    from threephase.training import warmup_then_linear

    steps_per_epoch = math.ceil(num_examples / config.per_device_train_batch_size)
    warmup = first_epoch_warmup(config, num_examples, processes=1, accumulation=1)
    total = steps_per_epoch * config.num_train_epochs
    rates = [config.learning_rate * warmup_then_linear(step, warmup, total) for step in range(total)]
    return np.array(rates), warmup, steps_per_epoch


def schedule_figure(out: Path) -> Path:
    """Phase 3's learning rate: warm-up inside epoch 1, then linear decay over the whole epoch budget."""
    config = FTConfig()
    rates, warmup, per_epoch = schedule_points(config, SCHEDULE_EXAMPLES)
    epochs = np.arange(1, len(rates) + 1) / per_epoch
    peak = config.learning_rate
    fig, (zoom, whole) = plt.subplots(1, 2, figsize=(6.5, 3.2), layout="constrained",
                                      gridspec_kw={"width_ratios": [1, 1.6]})
    first = 2 * per_epoch
    zoom.plot(np.arange(1, first + 1), rates[:first] / peak, color="#2b6cb0", lw=2)
    zoom.axvline(warmup, color="grey", ls=":", lw=1)
    zoom.axvline(per_epoch, color="#4a5568", lw=0.8)
    zoom.text(warmup + 3, 0.12, f"warm-up:\n{warmup} steps\n= {config.warmup_ratio:g} of\nepoch 1",
              fontsize=SMALLEST_PT)
    zoom.text(per_epoch + 3, 0.12, "end of\nepoch 1", fontsize=SMALLEST_PT)
    zoom.set_xlabel("optimizer step")
    zoom.set_ylabel("learning rate / peak")
    zoom.set_title("first two epochs")
    zoom.set_ylim(0, 1.08)

    whole.plot(epochs, rates / peak, color="#2b6cb0", lw=2, label="threephase: warm-up in epoch 1")
    whole_budget_warmup = round(config.warmup_ratio * len(rates))
    steps = np.arange(len(rates))
    naive = np.where(steps < whole_budget_warmup, steps / whole_budget_warmup,
                     (len(rates) - steps) / (len(rates) - whole_budget_warmup))
    whole.plot(epochs, naive, color="#a0aec0", lw=1.5, ls="--",
               label=f"{config.warmup_ratio:g} of all {config.num_train_epochs} epochs")
    whole.axvspan(0, config.min_epochs, color="#2f855a", alpha=0.1)
    whole.text(config.min_epochs + 0.8, 0.06, f"early stopping can end\ntraining after epoch {config.min_epochs}",
               fontsize=SMALLEST_PT, color="#2f855a")
    whole.set_xlabel("epoch")
    whole.set_title(f"the whole budget ({config.num_train_epochs} epochs)")
    whole.set_xlim(0, config.num_train_epochs)
    whole.set_ylim(0, 1.08)
    whole.legend(loc="upper right", fontsize=SMALLEST_PT)
    return _save(fig, "ft_schedule.svg", out)


def cosine_figure(out: Path) -> Path:
    """Pair scores on the unit circle, and the loss (score - cos)^2 as a function of the angle."""
    fig, (circle, loss) = plt.subplots(1, 2, figsize=(6.5, 3.3), layout="constrained",
                                       gridspec_kw={"width_ratios": [1, 1.25]})
    t = np.linspace(0, 2 * np.pi, 400)
    circle.plot(np.cos(t), np.sin(t), color="#cbd5e0", lw=1)
    circle.set_aspect("equal")
    circle.axis("off")
    u, same, other = np.deg2rad(10), np.deg2rad(45), np.deg2rad(55)

    def vector(angle, color, name):
        circle.annotate("", (np.cos(angle), np.sin(angle)), (0, 0),
                        arrowprops={"arrowstyle": "-|>", "color": color, "lw": 2, "shrinkA": 0, "shrinkB": 0})
        circle.text(1.13 * np.cos(angle), 1.13 * np.sin(angle), name, color=color, ha="center", va="center",
                    fontsize=11)

    vector(u, "k", "u")
    vector(same, "#2f855a", "v₁")
    vector(-other, "#c53030", "v₂")
    for start, end, color in ((same, u + 0.07, "#2f855a"), (-other, u - np.pi / 2 + 0.05, "#c53030")):
        arc = np.linspace(start, end, 30)
        circle.plot(0.72 * np.cos(arc), 0.72 * np.sin(arc), color=color, lw=1.3)
        circle.annotate("", (0.72 * np.cos(arc[-1]), 0.72 * np.sin(arc[-1])),
                        (0.72 * np.cos(arc[-3]), 0.72 * np.sin(arc[-3])),
                        arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.3})
    orth = u - np.pi / 2
    circle.plot([0, np.cos(orth)], [0, np.sin(orth)], color="#c53030", lw=1, ls=":")
    circle.text(-1.25, 1.2, "score 1 (same class):\nv₁ pulled onto u, cos → 1", color="#2f855a",
                fontsize=SMALLEST_PT, va="top")
    circle.text(-1.25, -1.32, "score 0: v₂ pushed to\northogonal, cos → 0", color="#c53030", fontsize=SMALLEST_PT)
    circle.set_xlim(-1.3, 1.3)
    circle.set_ylim(-1.4, 1.3)

    angle = np.linspace(0, 180, 361)
    cos = np.cos(np.deg2rad(angle))
    loss.plot(angle, (1 - cos) ** 2, color="#2f855a", lw=2, label="score 1: $(1 - \\cos)^2$")
    loss.plot(angle, (0 - cos) ** 2, color="#c53030", lw=2, label="score 0: $(0 - \\cos)^2$")
    loss.axvline(90, color="grey", ls=":", lw=1)
    loss.set_xticks([0, 45, 90, 135, 180])
    loss.set_xlabel("angle between u and v (degrees)")
    loss.set_ylabel("pair loss $(s - \\cos)^2$")
    loss.set_title("the loss of one pair")
    loss.legend(loc="upper center", fontsize=SMALLEST_PT)
    loss.set_ylim(0, 4.3)
    return _save(fig, "pair_cosine.svg", out)


FIGURES = (resize_figure, tsdae_figure, schedule_figure, cosine_figure)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the SVGs (default: book/images)")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    for draw in FIGURES:
        print(draw(out))


if __name__ == "__main__":
    main()
