"""Texts without labels for phase 1: a file, or the training texts outside the labelled subset."""

import json

import pytest
from conftest import tiny_config

from threephase import ThreePhaseError, load_data, run


def test_train_means_the_training_texts_outside_the_subset(data_dir):
    data = load_data(dataset="snips2", data_dir=data_dir, train_per_class=4, test_per_class=3, unlabelled="train")
    unlabelled = set(data["unlabelled"]["text"])
    assert len(unlabelled) > 10_000 and not unlabelled & set(data["train"]["text"])
    assert "unlabelled" not in load_data(dataset="snips2", data_dir=data_dir, train_per_class=4)


def test_max_unlabelled_samples_draws_a_seeded_sample(data_dir):
    settings = dict(dataset="snips2", data_dir=data_dir, train_per_class=4, unlabelled="train")
    everything = set(load_data(**settings)["unlabelled"]["text"])
    first = load_data(**settings, max_unlabelled_samples=50)["unlabelled"]["text"]
    assert len(first) == 50 and set(first) <= everything
    assert load_data(**settings, max_unlabelled_samples=50)["unlabelled"]["text"] == first
    assert load_data(**settings, max_unlabelled_samples=50, seed=1)["unlabelled"]["text"] != first


def test_max_unlabelled_samples_must_be_positive():
    from threephase.config import RunConfig, apply_overrides

    with pytest.raises(ThreePhaseError, match="max_unlabelled_samples must be at least 1"):
        apply_overrides(RunConfig(), {"data.max_unlabelled_samples": 0}).validate()


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".jsonl"])
def test_a_file_of_texts(tmp_path, data_dir, suffix):
    texts = ["play some jazz please", "what is the weather in rome", "book a table for four"]
    path = tmp_path / f"texts{suffix}"
    if suffix == ".txt":
        path.write_text("\n".join(texts) + "\n\n")
    elif suffix == ".csv":
        path.write_text("text\n" + "\n".join(texts) + "\n")
    else:
        path.write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n")
    data = load_data(dataset="snips2", data_dir=data_dir, train_per_class=4, unlabelled=str(path))
    assert data["unlabelled"]["text"] == texts


def test_a_missing_file_is_named(data_dir, tmp_path):
    with pytest.raises(ThreePhaseError, match="neither 'train' nor a file"):
        load_data(dataset="snips2", data_dir=data_dir, train_per_class=4, unlabelled=str(tmp_path / "none.txt"))


def test_phase1_and_joint_read_the_unlabelled_texts(tiny_data, tmp_path):
    texts = [f"an unlabelled request number {i}" for i in range(20)]
    data = tiny_data.copy()
    from datasets import Dataset

    data["unlabelled"] = Dataset.from_dict({"text": texts})
    labelled = len(tiny_data["train"])
    three = run(tiny_config("dae-ft"), data=data).metrics
    assert three["phases"]["dae"]["examples"] == 1 * (labelled + len(texts))  # DAE epochs × (labelled + unlabelled)
    assert three["split_sizes"]["unlabelled"] == len(texts) and "unlabelled" in three["data_fingerprint"]
    plain = run(tiny_config("dae-ft"), data=tiny_data).metrics
    assert plain["phases"]["dae"]["examples"] == labelled
