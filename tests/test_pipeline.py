"""End-to-end runs with the real offline all-MiniLM-L6-v2 on snips2."""

import json

import numpy as np
import pytest
from conftest import tiny_config

from threephase import RunConfig, RunResult, ThreePhaseClassifier, ThreePhaseError, VARIANTS, load_data, preset_config, run
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
    assert np.allclose(result.classifier.predict_proba(texts[:20]), probabilities[:20], atol=1e-6)  # in memory
    assert [d["label"] for d in classifier(texts[:20])] == classifier.predict(texts[:20])


def test_resume_on_a_finished_run_returns_its_metrics_and_saved_classifier(quick_run, data_dir):
    output, result = quick_run
    config = RunConfig.from_json_file(output / "config.json")
    again = run(config, resume=True)
    assert again.metrics == json.loads((output / "metrics.json").read_text())
    assert again.output_dir == output and again._classifier is None  # loaded when first used
    text = ["play the new album by daft punk", "book a table for four"]
    assert np.allclose(again.classifier.predict_proba(text), result.classifier.predict_proba(text), atol=1e-6)




@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_runs(variant, tiny_data):
    metrics = run(tiny_config(variant), data=tiny_data).metrics
    spec = VARIANTS[variant]
    expected = {variant} if spec.baseline else {"ft"} | {n for n in ("dae", "cl", "joint") if getattr(spec, n)}
    assert set(metrics["phases"]) == expected
    assert 0 <= metrics["accuracy"] <= 1 and metrics["split_sizes"]["test"] == 42
    if spec.cl or spec.joint:
        phase = metrics["phases"]["cl" if spec.cl else "joint"]
        assert phase["num_pairs"] > 0 and phase["steps"] > 0
        assert (phase["class_sizes"] is None) == (not spec.resize)
    if spec.joint:
        history = metrics["phases"]["joint"]["loss_history"]
        assert any("loss_dae" in entry and "loss_cl" in entry for entry in history)


def test_extra_imb_resizes_a_small_class(tiny_data):
    counts = {}
    keep = [i for i, label in enumerate(tiny_data["train"]["label"]) if label != 0 or counts.setdefault(0, 0) < 2
            and not counts.update({0: counts[0] + 1})]
    data = tiny_data.copy()
    data["train"] = tiny_data["train"].select(keep)
    name = data["train"].features["label"].names[0]
    default = run(tiny_config("three-phase"), data=data).metrics["phases"]["cl"]["class_sizes"]
    extra = run(tiny_config("extra-imb"), data=data).metrics["phases"]["cl"]["class_sizes"]
    assert default["before"][0] == extra["before"][0] == 2, name
    assert extra["after"][0] > default["after"][0] >= 2


def test_same_seed_same_metrics_other_seed_differs(tiny_data):
    first = run(tiny_config("three-phase", seed=5), data=tiny_data).metrics
    second = run(tiny_config("three-phase", seed=5), data=tiny_data).metrics
    third = run(tiny_config("three-phase", seed=6), data=tiny_data).metrics
    for key in ("accuracy", "macro_f1", "confusion_matrix"):
        assert first[key] == second[key]
    losses = lambda m: [e["loss"] for p in ("dae", "cl", "ft") for e in m["phases"][p]["loss_history"]]  # noqa: E731
    assert losses(first) == losses(second)
    assert losses(first) != losses(third)


def test_failed_run_writes_nothing(tmp_path, tiny_data):
    output = tmp_path / "run"
    config = tiny_config("ft", output_dir=str(output), model_name_or_path=str(tmp_path / "no-model"))
    with pytest.raises(ThreePhaseError, match="does not exist"):
        run(config, data=tiny_data)
    assert list(tmp_path.iterdir()) == []


def test_single_example_class_cannot_be_paired(tiny_data):
    labels = tiny_data["train"]["label"]
    keep = [i for i, label in enumerate(labels) if label != 0] + [labels.index(0)]
    data = tiny_data.copy()
    data["train"] = tiny_data["train"].select(keep)
    with pytest.raises(ThreePhaseError, match="single training example"):
        run(tiny_config("cl-ft"), data=data)


def own_data(tiny_data, label):
    """snips2's tiny subset as your own DatasetDict: columns sentence and intent, train and test only."""
    from datasets import Dataset, DatasetDict

    names = tiny_data["train"].features["label"].names
    return DatasetDict({split: Dataset.from_dict({"sentence": tiny_data[split]["text"],
                                                  "intent": [label(i, names) for i in tiny_data[split]["label"]]})
                        for split in ("train", "test")})


@pytest.mark.parametrize("kind", ["str", "int"])
def test_own_dataset_dict_with_other_columns_and_plain_labels_trains(kind, tiny_data):
    label = (lambda i, names: names[i]) if kind == "str" else (lambda i, names: 10 * i + 3)
    config = tiny_config("ft", data__text_column="sentence", data__label_column="intent")
    result = run(config, data=own_data(tiny_data, label))
    names = tiny_data["train"].features["label"].names
    expected = sorted(names) if kind == "str" else [str(10 * i + 3) for i in range(7)]
    assert result.metrics["label_names"] == result.classifier.label_names == expected
    sizes = result.metrics["split_sizes"]
    assert sizes["test"] == len(tiny_data["test"]) and sizes["train"] + sizes["validation"] == len(tiny_data["train"])
    assert result.classifier("play some jazz")[0]["label"] in expected


def test_unusable_data_is_refused_before_anything_is_written(tmp_path, tiny_data):
    config = tiny_config("ft", output_dir=str(tmp_path / "run"), data__text_column="utterance")
    with pytest.raises(ThreePhaseError, match="no column 'utterance'"):
        run(config, data=own_data(tiny_data, lambda i, names: names[i]))
    assert not (tmp_path / "run").exists()
