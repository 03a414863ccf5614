"""The notebooks' plotting and analysis helpers: the numbers they compute and what the plots contain."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import pandas as pd  # noqa: E402
from datasets import ClassLabel, Dataset, Features, Value  # noqa: E402

from threephase import viz  # noqa: E402

SIZES = {"a": 1000, "b": 300, "c": 50, "d": 5}  # the spec's worked example


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_plot_class_sizes_draws_before_and_after_bars():
    ax = viz.plot_class_sizes(SIZES, {"a": 1000, "b": 300, "c": 87, "d": 15})
    before, after = ax.containers
    assert [bar.get_height() for bar in before] == [1000, 300, 50, 5]
    assert [bar.get_height() for bar in after] == [1000, 300, 87, 15]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    assert len(viz.plot_class_sizes(SIZES).containers) == 1


def test_plot_resize_curve_marks_ratios_crossing_and_classes():
    ax = viz.plot_resize_curve(1000, 1.5, 4.0, SIZES)
    assert ax.get_xscale() == "log"
    curve = ax.lines[0]
    x, y = curve.get_data()
    assert x[0] == pytest.approx(1) and y[0] == pytest.approx(4.0) and y[-1] == pytest.approx(0.0, abs=1e-12)
    horizontal = {line.get_ydata()[0] for line in ax.lines if len(set(line.get_ydata())) == 1 and
                  len(line.get_xdata()) == 2 and line.get_xdata()[0] == 0}
    assert {1.5, 4.0} <= horizontal
    crossing = next(line for line in ax.lines if line.get_label().startswith("f = 1"))
    assert crossing.get_xdata()[0] == pytest.approx(1000 ** 0.75) and crossing.get_ydata()[0] == 1.0
    classes = next(line for line in ax.lines if line.get_label() == "classes")
    assert np.allclose(sorted(classes.get_ydata()), [0.0, 0.6972, 1.7347, 3.0680], atol=1e-4)


def test_plot_resizing_uses_resized_sizes():
    fig = viz.plot_resizing(SIZES, whole_copies=True)
    after = fig.axes[0].containers[1]
    assert [bar.get_height() for bar in after] == [1000, 300, 100, 15]  # round(f): 2 and 3 copies


def test_resize_widget_has_sliders_and_redraws():
    widget = viz.resize_widget(SIZES)
    names = {child.description: child for child in widget.children if hasattr(child, "description")}
    assert names["min_ratio"].value == 1.5 and names["max_ratio"].value == 4.0
    before = len(plt.get_fignums())
    widget.f(min_ratio=1.5, max_ratio=20.0, whole_copies=False)  # the redraw the sliders trigger
    assert len(plt.get_fignums()) == before + 1
    bars = plt.gcf().axes[0].containers[1]
    assert bars[1].get_height() > 300  # with max_ratio 20 the class of 300 is resized too


def test_resize_widget_in_a_book_build_creates_no_widget(monkeypatch, capsys):
    from threephase import notebook

    monkeypatch.setenv(notebook.BUILD_ENV, "1")
    assert viz.resize_widget(SIZES) is None and "need a running kernel" in capsys.readouterr().out


def test_resize_table_counts_resized_classes():
    table = viz.resize_table({"worked": SIZES, "balanced": {"x": 50, "y": 40}})
    assert table.loc["worked", "classes resized"] == 2 and table.loc["balanced", "classes resized"] == 0
    assert table.loc["worked", "largest f(x)"] == pytest.approx(3.0680, abs=1e-4)
    assert table.loc["worked", "resize needs x <="] == pytest.approx(1000 ** 0.625)


def _split(labels, names=("p", "q", "r")):
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(names))})
    return Dataset.from_dict({"text": [f"t{i}" for i in range(len(labels))], "label": list(labels)}, features=features)


def test_skewed_subset_takes_the_requested_sizes():
    split = _split([0] * 10 + [1] * 10 + [2] * 10)
    subset = viz.skewed_subset(split, {"p": 7, "q": 2}, seed=1)
    assert sorted(subset["label"]) == [0] * 7 + [1] * 2
    assert subset["text"] == viz.skewed_subset(split, {"p": 7, "q": 2}, seed=1)["text"]


def test_pairs_table_shows_texts_classes_and_scores():
    table = viz.pairs_table([(0, 2, 0.0), (0, 1, 1.0)], ["x", "y", "z"], [0, 0, 1], ["p", "q"])
    assert table.iloc[0].tolist() == ["x", "p", "z", "q", 0.0]
    assert table["pair score"].tolist() == [0.0, 1.0]


def test_cosine_similarity_stats_within_and_across():
    embeddings = np.array([[1, 0], [2, 0], [0, 1], [0, 3]], dtype=float)
    stats = viz.cosine_similarity_stats(embeddings, [0, 0, 1, 1])
    assert stats == pytest.approx({"within": 1.0, "across": 0.0, "gap": 1.0})
    mixed = viz.cosine_similarity_stats(embeddings, [0, 1, 0, 1])
    assert mixed["within"] == pytest.approx(0.0) and mixed["across"] == pytest.approx(0.5)


def test_project_2d_is_deterministic_and_2d():
    embeddings = np.random.default_rng(0).normal(size=(30, 8))
    points = viz.project_2d(embeddings)
    assert points.shape == (30, 2)
    assert np.array_equal(points, viz.project_2d(embeddings.copy()))
    assert points[:, 0].var() >= points[:, 1].var()  # first component carries the most variance
    with pytest.raises(ValueError):
        viz.project_2d(embeddings, method="umap")


def test_cluster_quality_separates_clusters_from_noise():
    rng = np.random.default_rng(0)
    centres = np.eye(4)[:2] * 10
    labels = np.repeat([0, 1], 20)
    clustered = centres[labels] + rng.normal(scale=0.1, size=(40, 4))
    assert viz.cluster_quality(clustered, labels) > 0.9
    assert abs(viz.cluster_quality(rng.normal(size=(40, 4)), labels)) < 0.2


def test_plot_projections_one_panel_per_stage_with_silhouette():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 10)
    named = {"before": rng.normal(size=(30, 5)), "after": np.eye(5)[labels] + rng.normal(scale=0.05, size=(30, 5))}
    fig = viz.plot_projections(named, labels, ["p", "q", "r"])
    assert len(fig.axes) == 2
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("before") and titles[1].startswith("after")
    after_silhouette = float(titles[1].split("silhouette ")[1])
    assert after_silhouette == pytest.approx(viz.cluster_quality(named["after"], labels), abs=1e-3)
    assert after_silhouette > 0.8
    assert len(fig.axes[0].collections) == 3  # one scatter per class


def test_plot_loss_history_plots_steps_and_losses():
    history = [{"step": 1, "epoch": 0.1, "loss": 5.0}, {"step": 5, "epoch": 0.5, "loss": 3.0}, {"step": 5, "epoch": 1}]
    ax = viz.plot_loss_history(history, label="phase 1")
    x, y = ax.lines[0].get_data()
    assert list(x) == [1, 5] and list(y) == [5.0, 3.0]
    assert ax.get_legend().get_texts()[0].get_text() == "phase 1"


def test_plot_ft_curves_marks_the_best_epoch():
    epochs = [{"epoch": 1, "validation_accuracy": 0.5, "validation_loss": 1.0, "train_loss": 1.5},
              {"epoch": 2, "validation_accuracy": 0.8, "validation_loss": 0.7, "train_loss": 0.9},
              {"epoch": 3, "validation_accuracy": 0.8, "validation_loss": 0.6, "train_loss": 0.5}]
    fig = viz.plot_ft_curves(epochs)
    left, right = fig.axes
    assert [line.get_label() for line in left.lines][:2] == ["train loss", "validation loss"]
    assert list(right.lines[0].get_ydata()) == [0.5, 0.8, 0.8]
    best = [line for line in right.lines if line.get_label().startswith("best epoch")]
    assert best[0].get_xdata()[0] == 3  # tie on accuracy: the lower loss wins
    assert viz.plot_ft_curves(epochs, best_epoch=2).axes[1].lines[1].get_xdata()[0] == 2


def test_plot_confusion_matrix_writes_counts():
    ax = viz.plot_confusion_matrix([[5, 1], [0, 7]], ["p", "q"])
    assert [t.get_text() for t in ax.texts] == ["5", "1", "0", "7"]
    assert np.array_equal(ax.images[0].get_array(), [[5, 1], [0, 7]])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["p", "q"]


def test_per_class_table_keeps_support_whole_and_drops_accuracy():
    from threephase.records import classification_metrics

    metrics = classification_metrics([0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 0], ["a", "b", "c"])
    table = viz.per_class_table(metrics)
    assert list(table.index) == ["a", "b", "c", "macro avg", "weighted avg"]
    assert table["support"].dtype.kind == "i" and table["support"].tolist() == [1, 2, 3, 6, 6]
    assert list(viz.per_class_table(metrics, ["c", "a"]).index[:2]) == ["c", "a"]


def test_small_multiples_draws_one_titled_panel_per_value():
    drawn = []

    def draw(ax, value):
        drawn.append(value)
        ax.plot([0, 1], [0, value], label="line")
        ax.legend()

    fig = viz.small_multiples(draw, [2, 4.5, 10], "max_ratio", ncols=2)
    assert drawn == [2, 4.5, 10]
    assert len(fig.axes) == 3  # the fourth slot of the 2 x 2 grid is removed
    assert [ax.get_title() for ax in fig.axes] == ["max_ratio = 2", "max_ratio = 4.5", "max_ratio = 10"]
    assert fig.axes[0].get_legend() is not None and all(ax.get_legend() is None for ax in fig.axes[1:])
    with pytest.raises(ValueError):
        viz.small_multiples(draw, [], "max_ratio")


def test_resize_multiples_shows_the_resizing_at_each_max_ratio():
    fig = viz.resize_multiples(SIZES, 1.5, (4, 20))
    assert [ax.get_title() for ax in fig.axes] == ["max_ratio = 4", "max_ratio = 20"]
    for ax, max_ratio in zip(fig.axes, (4, 20)):
        after = [bar.get_height() for bar in ax.containers[1]]
        assert after == list(viz.resized_sizes(SIZES, 1.5, max_ratio).values())
        assert ax.get_yscale() == "log"
    assert fig.axes[0].get_xlabel() == "2 of 4 classes resized"


def test_long_tail_multiples_reshapes_the_split_per_factor():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(90)], "label": [0] * 30 + [1] * 30 + [2] * 30})
    names = ["a", "b", "c"]
    assert viz.long_tail_sizes(frame, 1, names) == {"a": 30, "b": 30, "c": 30}
    tail = viz.long_tail_sizes(frame, 10, names)
    assert list(tail.values()) == [30, 9, 3] and set(tail) == set(names)  # largest first, whichever class it is
    fig = viz.long_tail_multiples(frame, names, (1, 10))
    assert [ax.get_title() for ax in fig.axes] == ["imbalance_factor = 1", "imbalance_factor = 10"]
    assert [bar.get_height() for bar in fig.axes[1].containers[0]] == [30, 9, 3]
