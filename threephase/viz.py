"""Plots and small analyses for the book's notebooks: class sizes and the resize curve, embedding geometry, loss and
FT curves, confusion matrices. (Caching trained bodies and runs is in :mod:`threephase.notebook`.)

Every plotting function draws on the ``ax`` it is given (or a new figure) and returns the axes or figure, so that the
caller can inspect or save it. Matplotlib is imported lazily; ipywidgets only by :func:`resize_widget` (never in a
book build). Beside each widget the notebooks draw :func:`small_multiples` of the same knob, which the static book
can show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .imbalance import crossing_point, resize_curve, resize_ratios, resized_sizes


def _axes(ax, figsize=(6, 3.5)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, layout="constrained")[1]


def plot_class_sizes(before: Mapping[str, int], after: Mapping[str, int] | None = None, ax=None,
                     title: str | None = None):
    """Grouped bars of the examples per class before (and, if given, after) the resizing; returns the axes."""
    ax = _axes(ax)
    names = list(before)
    x = np.arange(len(names))
    width = 0.4 if after is not None else 0.8
    ax.bar(x - (width / 2 if after is not None else 0), [before[n] for n in names], width, label="before")
    if after is not None:
        ax.bar(x + width / 2, [after[n] for n in names], width, label="after")
        ax.legend()
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("examples")
    ax.set_title(title or "class sizes")
    return ax


def plot_resize_curve(largest: int, min_ratio: float = 1.5, max_ratio: float = 4.0,
                      class_sizes: Mapping[str, int] | None = None, ax=None):
    """The resize curve f(x) of eq. 4 on a log x axis, with the ``min_ratio`` and ``max_ratio`` lines, the crossing
    x = M^((max_ratio-1)/max_ratio) where f = 1 marked, and one point per class of ``class_sizes``; returns the axes.

    The shaded band is where classes are actually resized (f(x) >= min_ratio)."""
    ax = _axes(ax)
    x = np.logspace(0, np.log10(largest), 200)
    ax.plot(x, resize_curve(x, largest, max_ratio), color="C0", label="f(x)")
    ax.axhline(max_ratio, color="C3", ls="--", lw=1, label=f"max_ratio = {max_ratio:g}")
    ax.axhline(min_ratio, color="C2", ls="--", lw=1, label=f"min_ratio = {min_ratio:g}")
    cross = crossing_point(max_ratio, largest)
    ax.axvline(cross, color="grey", ls=":", lw=1)
    ax.plot([cross], [1.0], "o", color="grey", label=f"f = 1 at x = {cross:.0f}")
    ax.axvspan(1, largest ** ((max_ratio - min_ratio) / max_ratio), color="C2", alpha=0.08, label="resized")
    if class_sizes:
        sizes = np.array(list(class_sizes.values()), dtype=float)
        ax.plot(sizes, resize_curve(sizes, largest, max_ratio), "x", color="k", ms=8, label="classes")
    ax.set_xscale("log")
    ax.set_xlabel("class size x")
    ax.set_ylabel("resize ratio f(x)")
    ax.set_title(f"resize curve, largest class M = {largest}")
    ax.legend(fontsize="small")
    return ax


def plot_resizing(class_sizes: Mapping[str, int], min_ratio: float = 1.5, max_ratio: float = 4.0,
                  whole_copies: bool = False):
    """Both views of the resizing side by side: class sizes before/after, and the resize curve; returns the figure."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    plot_class_sizes(class_sizes, resized_sizes(class_sizes, min_ratio, max_ratio, whole_copies), ax=left)
    plot_resize_curve(max(class_sizes.values()), min_ratio, max_ratio, class_sizes, ax=right)
    return fig


def resize_widget(class_sizes: Mapping[str, int], min_ratio: float = 1.5, max_ratio: float = 4.0):
    """Sliders for ``min_ratio`` and ``max_ratio`` that redraw :func:`plot_resizing`; returns the ipywidgets object.

    In a book build (:func:`threephase.notebook.static_widgets`) it creates no widget, says so and returns ``None``."""
    from .notebook import static_widgets

    if static_widgets():
        print("(The sliders need a running kernel: open this notebook in Jupyter or Colab.)")
        return None
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    def draw(min_ratio: float, max_ratio: float, whole_copies: bool):
        if min_ratio > max_ratio:
            print(f"min_ratio ({min_ratio}) must not exceed max_ratio ({max_ratio}).")
            return
        plot_resizing(class_sizes, min_ratio, max_ratio, whole_copies)
        plt.show()

    slider = dict(step=0.1, continuous_update=False, style={"description_width": "initial"})
    return widgets.interactive(
        draw,
        min_ratio=widgets.FloatSlider(value=min_ratio, min=0.1, max=10, description="min_ratio", **slider),
        max_ratio=widgets.FloatSlider(value=max_ratio, min=0.5, max=30, description="max_ratio", **slider),
        whole_copies=widgets.Checkbox(value=False, description="whole_copies"),
    )


def small_multiples(draw, values: Sequence, name: str, *, ncols: int = 2, panel_size: tuple[float, float] = (4.6, 3.2)):
    """One panel per value of a knob, ``draw(ax, value)`` on each, titled ``"name = value"``; returns the figure.

    The static stand-in for a widget: the built book has no kernel to move a slider, so it shows the knob at a few
    settings side by side. Only the first panel keeps its legend (the others would repeat it)."""
    import matplotlib.pyplot as plt

    values = list(values)
    if not values:
        raise ValueError("small_multiples needs at least one value to draw.")
    ncols = min(ncols, len(values))
    nrows = -(-len(values) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
                             layout="constrained", squeeze=False)
    panels = list(axes.flat)
    for index, (ax, value) in enumerate(zip(panels, values)):
        draw(ax, value)
        ax.set_title(f"{name} = {value:g}" if isinstance(value, (int, float)) else f"{name} = {value}")
        if index and ax.get_legend() is not None:
            ax.get_legend().remove()
    for ax in panels[len(values):]:
        ax.remove()
    return fig


def _resize_bars(ax, sizes: Mapping[str, int], min_ratio: float, max_ratio: float):
    after = resized_sizes(sizes, min_ratio, max_ratio)
    plot_class_sizes(sizes, after, ax=ax)
    ax.set_yscale("log")  # the small classes, the ones that change, would vanish on a linear axis
    changed = sum(after[name] != sizes[name] for name in sizes)
    ax.set_xlabel(f"{changed} of {len(sizes)} classes resized")


def resize_multiples(class_sizes: Mapping[str, int], min_ratio: float = 1.5,
                     max_ratios: Sequence[float] = (2, 4, 10, 20)):
    """Class sizes before and after the resizing at several ``max_ratio`` values (what :func:`resize_widget`'s
    slider changes), one panel each; returns the figure."""
    return small_multiples(lambda ax, r: _resize_bars(ax, class_sizes, min_ratio, r), max_ratios, "max_ratio")


def long_tail_sizes(frame: pd.DataFrame, factor: float, label_names: Sequence[str], seed: int = 0) -> dict[str, int]:
    """The class sizes that :func:`~threephase.sampling.long_tail` leaves with ``factor``, by class name, largest
    first (which class gets which size is the data seed's draw)."""
    from .sampling import long_tail

    counts = long_tail(frame, factor, seed)["label"].value_counts()
    return {label_names[i]: int(n) for i, n in counts.items()}


def long_tail_multiples(frame: pd.DataFrame, label_names: Sequence[str], factors: Sequence[float] = (1, 10, 30, 100),
                        min_ratio: float = 1.5, max_ratio: float = 4.0, seed: int = 0):
    """Class sizes before and after the resizing of a long-tailed split at several ``data.imbalance_factor`` values,
    one panel each; returns the figure."""
    return small_multiples(
        lambda ax, factor: _resize_bars(ax, long_tail_sizes(frame, factor, label_names, seed), min_ratio, max_ratio),
        factors, "imbalance_factor")


def resize_table(sizes_by_name: Mapping[str, Mapping[str, int]], min_ratio: float = 1.5,
                 max_ratio: float = 4.0) -> pd.DataFrame:
    """One row per dataset: largest and smallest class, the largest f(x), and how many classes the resizing
    changes (with the given ratios)."""
    rows = {}
    for name, sizes in sizes_by_name.items():
        largest, smallest = max(sizes.values()), min(sizes.values())
        ratios = resize_ratios(sizes, min_ratio, max_ratio)
        rows[name] = {"classes": len(sizes), "largest class M": largest, "smallest class": smallest,
                      "largest f(x)": float(resize_curve(smallest, largest, max_ratio)) if largest > 1 else 0.0,
                      "resize needs x <=": largest ** ((max_ratio - min_ratio) / max_ratio),
                      "classes resized": sum(r != 1.0 for r in ratios.values())}
    return pd.DataFrame(rows).T.astype({"classes": int, "largest class M": int, "smallest class": int,
                                         "classes resized": int})


def skewed_subset(split, sizes: Mapping[str, int], seed: int = 0):
    """A seeded subset of a ``datasets`` split with ``sizes[name]`` examples of each named class (others dropped)."""
    names = split.features["label"].names
    rng = np.random.default_rng(seed)
    labels = np.asarray(split["label"])
    keep = [rng.permutation(np.flatnonzero(labels == names.index(name)))[:n] for name, n in sizes.items()]
    return split.select(np.sort(np.concatenate(keep)).tolist())


def pairs_table(pairs: Sequence[tuple[int, int, float]], texts: Sequence[str], labels: Sequence[int],
                label_names: Sequence[str]) -> pd.DataFrame:
    """The pairs as a table: both texts, both class names and the pair score."""
    return pd.DataFrame([{"text a": texts[i], "class a": label_names[labels[i]], "text b": texts[j],
                          "class b": label_names[labels[j]], "pair score": score} for i, j, score in pairs])


def _unit(embeddings) -> np.ndarray:
    e = np.asarray(embeddings, dtype=np.float64)
    return e / np.clip(np.linalg.norm(e, axis=1, keepdims=True), 1e-12, None)


def cosine_similarity_stats(embeddings, labels: Sequence[int]) -> dict[str, float]:
    """Mean cosine similarity of pairs of distinct examples ``within`` one class and ``across`` classes, and
    their difference ``gap`` (phase 2 / CL aims for within near 1 and across near 0)."""
    e, y = _unit(embeddings), np.asarray(labels)
    sims = e @ e.T
    same = y[:, None] == y[None, :]
    off_diagonal = ~np.eye(len(y), dtype=bool)
    within, across = float(sims[same & off_diagonal].mean()), float(sims[~same].mean())
    return {"within": within, "across": across, "gap": within - across}


def project_2d(embeddings, method: str = "pca", seed: int = 0) -> np.ndarray:
    """A deterministic 2-D projection (``"pca"`` of the unit-length embeddings) of shape (n, 2)."""
    if method != "pca":
        raise ValueError(f"Unknown projection method {method!r}: use 'pca'.")
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(_unit(embeddings))


def cluster_quality(embeddings, labels: Sequence[int]) -> float:
    """The silhouette score of the classes under cosine distance, in [-1, 1] (higher: tighter, better separated)."""
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(np.asarray(embeddings), np.asarray(labels), metric="cosine"))


def plot_projections(named_embeddings: Mapping[str, Any], labels: Sequence[int], label_names: Sequence[str],
                     method: str = "pca", seed: int = 0):
    """Side-by-side 2-D projections, one panel per entry, one colour per class, the silhouette in each title;
    returns the figure."""
    import matplotlib.pyplot as plt

    count = len(named_embeddings)
    fig, axes = plt.subplots(1, count, figsize=(4.2 * count, 4.2), layout="constrained", squeeze=False)
    y = np.asarray(labels)
    for ax, (name, emb) in zip(axes[0], named_embeddings.items()):
        points = project_2d(emb, method, seed)
        for k, label in enumerate(label_names):
            ax.scatter(*points[y == k].T, s=10, color=plt.cm.tab10(k % 10), label=label)
        ax.set_title(f"{name}\nsilhouette {cluster_quality(emb, y):.3f}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncol=min(len(label_names), 7),
               fontsize="small", markerscale=2)
    return fig


def plot_loss_history(history: Sequence[Mapping[str, float]], ax=None, label: str | None = None, key: str = "loss"):
    """The training loss (``key``) of a phase's ``loss_history`` against the optimizer step; returns the axes."""
    ax = _axes(ax)
    points = [(entry["step"], entry[key]) for entry in history if key in entry]
    ax.plot(*zip(*points), marker=".", label=label or key)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    if label:
        ax.legend()
    return ax


def plot_ft_curves(epochs: Sequence[Mapping[str, float]], best_epoch: int | None = None):
    """Phase 3 / FT per epoch: train and validation loss (left), validation accuracy (right), with the best epoch
    (given, or highest accuracy then lowest loss) marked; returns the figure."""
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(list(epochs))
    if best_epoch is None:
        best_epoch = int(frame.sort_values(["validation_accuracy", "validation_loss"],
                                           ascending=[False, True])["epoch"].iloc[0])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
    left.plot(frame["epoch"], frame["train_loss"].astype(float), marker="o", label="train loss")
    left.plot(frame["epoch"], frame["validation_loss"], marker="o", label="validation loss")
    right.plot(frame["epoch"], frame["validation_accuracy"], marker="o", color="C2", label="validation accuracy")
    for ax, name in ((left, "cross-entropy"), (right, "accuracy")):
        ax.axvline(best_epoch, color="grey", ls=":", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(name)
        ax.legend()
    return fig


def per_class_table(metrics: Mapping[str, Any], label_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Precision, recall, F1 and support of each class (then the macro and weighted averages) from the metrics of
    :func:`~threephase.records.classification_metrics`; the support is a count and stays an integer."""
    report = metrics["per_class"]
    rows = list(label_names or metrics["label_names"]) + [k for k in ("macro avg", "weighted avg") if k in report]
    table = pd.DataFrame([report[row] for row in rows], index=rows)[["precision", "recall", "f1-score", "support"]]
    return table.astype({"support": int})


def plot_confusion_matrix(matrix, label_names: Sequence[str], ax=None):
    """The confusion matrix (rows: true class, columns: predicted) with counts in the cells; returns the axes."""
    m = np.asarray(matrix)
    ax = _axes(ax, figsize=(5.5, 5))
    ax.imshow(m, cmap="Blues")
    for (i, j), value in np.ndenumerate(m):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > m.max() / 2 else "black")
    ticks = np.arange(len(label_names))
    ax.set_xticks(ticks, label_names, rotation=45, ha="right")
    ax.set_yticks(ticks, label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return ax
