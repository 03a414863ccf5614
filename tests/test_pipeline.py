"""An end-to-end run with the real offline all-MiniLM-L6-v2 on snips2 that learns, its record, and its classifier.

Every variant's tiny run is tests/test_variants.py (a file of its own, so that pytest-xdist runs the two side by side)."""

import json

import numpy as np
import pytest

from threephase import RunConfig, RunResult, ThreePhaseClassifier, ThreePhaseError, load_data, preset_config, run
from threephase.precision import resolve_precision


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, data_dir):
    """three-phase with the cpu preset on a stratified snips2 subset, written to a run folder."""
    output = tmp_path_factory.mktemp("runs") / "snips2-3p"
    config = preset_config("cpu", "snips2", output_dir=str(output), seed=0)
    config.data.data_dir = data_dir
    config.data.train_per_class, config.data.validation_per_class, config.data.test_per_class = 20, 8, 30
    config.max_seq_length, config.ft.num_train_epochs = 32, 6
    return output, run(config)


def test_three_phase_learns_snips2(quick_run):
    _, result = quick_run
    metrics = result.metrics
    chance = 1 / 7
    assert metrics["accuracy"] > chance + 0.5, metrics["accuracy"]
    assert metrics["macro_f1"] > chance + 0.5
    assert set(metrics["phases"]) == {"dae", "cl", "ft"}


def test_run_record_is_complete(quick_run):
    output, result = quick_run
    metrics = result.metrics
    assert isinstance(result, RunResult) and result.output_dir == output
    saved = json.loads((output / "metrics.json").read_text())
    assert list(saved)[:4] == ["accuracy", "macro_precision", "macro_recall", "macro_f1"]
    assert saved["accuracy"] == metrics["accuracy"]
    assert np.array(saved["confusion_matrix"]).sum() == saved["split_sizes"]["test"]
    assert len(saved["label_names"]) == 7 and "PlayMusic" in saved["per_class"]
    for phase in ("dae", "cl", "ft"):
        assert saved["phases"][phase]["loss_history"], phase
        assert saved["phases"][phase]["wall_time_s"] > 0
    assert saved["seed"] == 0 and "torch" in saved["versions"] and saved["device"]["device"]
    config = json.loads((output / "config.json").read_text())
    assert config["variant"] == "three-phase" and config["preset"] == "cpu"
    # The setting as asked (auto) and what it meant on this machine.
    assert config["precision"] == "auto" and saved["precision"] == resolve_precision("auto", "cpu")
    assert not list(output.parent.glob(".*partial"))
    assert (output / "classifier" / "head.safetensors").is_file()
    assert (output / "classifier" / "model.safetensors").is_file()  # the body, at the root
    card = (output / "classifier" / "README.md").read_text()
    assert "three-phase" in card and "snips2" in card and "Seed**: 0" in card and "macro_f1" in card


def test_the_run_folders_card_snippets_run(quick_run):
    from test_classifier import run_card_snippets

    output, _ = quick_run
    assert "'label':" in run_card_snippets(output / "classifier")


def test_saved_classifier_reloads_with_identical_predictions(quick_run, data_dir, tmp_path):
    output, result = quick_run
    metrics = result.metrics
    classifier = ThreePhaseClassifier.from_pretrained(output)
    data = load_data(dataset="snips2", data_dir=data_dir, test_per_class=30, seed=0)
    texts, labels = data["test"]["text"], data["test"]["label"]
    probabilities = classifier.predict_proba(texts)
    assert probabilities.shape == (len(texts), 7)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    accuracy = np.mean(probabilities.argmax(axis=1) == np.array(labels))
    assert accuracy == pytest.approx(metrics["accuracy"], abs=1e-9)
    classifier.save_pretrained(tmp_path / "copy")
    again = ThreePhaseClassifier.from_pretrained(tmp_path / "copy")
    assert np.array_equal(again.predict_proba(texts[:20]), classifier.predict_proba(texts[:20]))
    assert again.predict(["play the new album by daft punk"])[0] in again.label_names
    with pytest.raises(ThreePhaseError, match="list of texts"):
        again.predict("a single string")
    # in memory, on the same batches (in bf16 a text's rounding depends on the batch it is padded in)
    assert np.allclose(result.classifier.predict_proba(texts[:20]), classifier.predict_proba(texts[:20]), atol=1e-6)
    assert [d["label"] for d in classifier(texts[:20])] == classifier.predict(texts[:20])


def test_resume_on_a_finished_run_returns_its_metrics_and_saved_classifier(quick_run, data_dir):
    output, result = quick_run
    config = RunConfig.from_json_file(output / "config.json")
    again = run(config, resume=True)
    assert again.metrics == json.loads((output / "metrics.json").read_text())
    assert again.output_dir == output and again._classifier is None  # loaded when first used
    text = ["play the new album by daft punk", "book a table for four"]
    assert np.allclose(again.classifier.predict_proba(text), result.classifier.predict_proba(text), atol=1e-6)
