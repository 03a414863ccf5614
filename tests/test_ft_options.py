"""Imbalance-aware phase 3 options: class-weighted cross-entropy and macro-F1 early stopping."""

import pytest
import torch
from conftest import tiny_config

from threephase import FTConfig, ThreePhaseError, load_body, train_ft
from threephase.finetune import balanced_class_weights, scores_from_logits
from threephase.models import packaged_model_path


def test_balanced_weights_are_inverse_class_frequencies():
    weights = balanced_class_weights([0, 0, 0, 1], 3)
    assert weights.tolist() == pytest.approx([4 / 9, 4 / 3, 4 / 3])  # an absent class gets the weight of one example


def test_scores_include_macro_f1():
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    scores = scores_from_logits(logits, [0, 0, 1, 1])
    assert scores["accuracy"] == 0.75 and scores["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)


@pytest.mark.parametrize("key, value, says", [("class_weights", "inverse", "balanced"),
                                              ("metric_for_best_model", "f1", "macro_f1")])
def test_unknown_values_are_refused(key, value, says):
    with pytest.raises(ThreePhaseError, match=says):
        tiny_config(**{f"ft__{key}": value}).validate()


@pytest.mark.parametrize("frozen", [False, True])
def test_weighted_loss_and_macro_f1_model_selection(tiny_data, frozen):
    labels = tiny_data["train"]["label"]
    keep = [i for i, label in enumerate(labels) if label != 0] + [i for i, label in enumerate(labels) if label == 0][:2]
    skewed = tiny_data["train"].select(keep)
    config = FTConfig(learning_rate=1e-4, head_learning_rate=1e-2, num_train_epochs=4, min_epochs=4, patience=4,
                      per_device_train_batch_size=16, class_weights="balanced", metric_for_best_model="macro_f1",
                      freeze_body=frozen)
    body = load_body(packaged_model_path(), max_seq_length=32)
    _, report = train_ft(body, skewed, tiny_data["validation"], config, seed=0)
    epochs = report["epochs"]
    assert all("validation_macro_f1" in e for e in epochs)
    best = max(epochs, key=lambda e: (e["validation_macro_f1"], -e["validation_loss"]))
    assert report["best_epoch"] == best["epoch"]


def test_logreg_baseline_runs_saves_and_reloads(tiny_data, tmp_path):
    import numpy as np

    from threephase import ThreePhaseClassifier, run

    result = run(tiny_config("logreg", output_dir=str(tmp_path / "run")), data=tiny_data)
    assert set(result.metrics["phases"]) == {"logreg"} and result.metrics["accuracy"] > 1 / 7 + 0.3
    again = ThreePhaseClassifier.from_pretrained(tmp_path / "run")
    texts = tiny_data["test"]["text"][:10]
    assert np.allclose(again.predict_proba(texts), result.classifier.predict_proba(texts), atol=1e-6)


def test_logreg_head_reproduces_the_regression_on_two_classes():
    import numpy as np
    from datasets import ClassLabel, Dataset, Features, Value
    from sklearn.linear_model import LogisticRegression

    from threephase.baselines import train_logreg

    texts = ["great film", "loved it", "wonderful acting", "terrible plot", "awful film", "hated it"]
    data = Dataset.from_dict({"text": texts, "label": [1, 1, 1, 0, 0, 0]},
                             features=Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])}))
    body = load_body(packaged_model_path())
    classifier, report = train_logreg(body, data, data, seed=0)
    vectors = body.encode(texts, convert_to_numpy=True)
    reference = LogisticRegression(C=report["C"], class_weight="balanced", max_iter=2000,
                                   random_state=0).fit(vectors, data["label"])
    assert np.allclose(classifier.predict_proba(texts), reference.predict_proba(vectors), atol=1e-5)
    assert report["train_accuracy"] == 1.0


def test_baseline_regression_chooses_its_C_on_validation_only():
    import numpy as np

    from threephase.baselines import C_GRID, regression_on_validation

    rng = np.random.default_rng(0)
    train = rng.normal(size=(40, 5))
    train_labels = (train[:, 0] > 0).astype(int)
    validation = rng.normal(size=(30, 5))
    # Validation labels that a strongly regularised model (all one class) fits best: C must follow validation.
    flipped = (validation[:, 0] < 0).astype(int)
    model, report = regression_on_validation(train, train_labels, validation, flipped)
    assert report["C"] in C_GRID and set(report["validation_by_C"]) == {str(c) for c in C_GRID}
    assert report["validation_macro_f1"] == max(report["validation_by_C"].values())
    _, same = regression_on_validation(train, train_labels, validation, (validation[:, 0] > 0).astype(int))
    assert same["validation_macro_f1"] > report["validation_macro_f1"]
