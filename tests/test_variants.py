"""Every variant end to end on tiny snips2 data (conftest's tiny_config), seeding, and data the pipeline refuses."""

import pytest
from conftest import tiny_config

from threephase import ThreePhaseError, VARIANTS, run


@pytest.fixture(scope="module")
def tiny_run(tiny_data):
    """The metrics of ``run(tiny_config(variant, seed), data=tiny_data)``, each (variant, seed) trained once here."""
    done = {}

    def metrics(variant: str, seed: int = 0) -> dict:
        if (variant, seed) not in done:
            done[variant, seed] = run(tiny_config(variant, seed=seed), data=tiny_data).metrics
        return done[variant, seed]

    return metrics


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_runs(variant, tiny_run):
    metrics = tiny_run(variant)
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


def test_same_seed_same_metrics_other_seed_differs(tiny_data, tiny_run):
    first = tiny_run("three-phase", seed=0)  # test_every_variant_runs's run when it ran first
    second = run(tiny_config("three-phase", seed=0), data=tiny_data).metrics  # always trained again here
    third = tiny_run("three-phase", seed=1)
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
