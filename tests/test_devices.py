"""Where a model runs: one GPU per process, and a loaded classifier on the best device there is."""

from __future__ import annotations

import logging

import pytest
import torch
from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

import threephase.classifier
from threephase import FTConfig, ThreePhaseClassifier, load_body
from threephase.classifier import MLPHead
from threephase.errors import ThreePhaseError
from threephase.models import packaged_model_path
from threephase.training import training_arguments


def two_gpus(self):
    """n_gpu as TrainingArguments reads it on a machine with two GPUs, unless something set it to 1."""
    return 1 if self.__dict__.get("_n_gpu") == 1 else 2


def test_one_process_on_several_gpus_trains_on_one_and_names_torchrun(monkeypatch, caplog):
    monkeypatch.setattr(SentenceTransformerTrainingArguments, "n_gpu", property(two_gpus))
    with caplog.at_level(logging.WARNING, logger="threephase.training"):
        args = training_arguments(FTConfig(per_device_train_batch_size=8))
    # No DataParallel: the batch is the configured one, not one per GPU.
    assert args.n_gpu == 1 and args.train_batch_size == 8
    assert "torchrun --nproc_per_node 2" in caplog.text


def test_several_gpus_are_refused_when_they_cannot_be_pinned(monkeypatch):
    monkeypatch.setattr(SentenceTransformerTrainingArguments, "n_gpu", property(lambda self: 2))
    with pytest.raises(ThreePhaseError, match="torchrun --nproc_per_node 2"):
        training_arguments(FTConfig())


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    body = load_body(packaged_model_path(), max_seq_length=16)
    classifier = ThreePhaseClassifier(body, MLPHead(body.get_embedding_dimension(), 2, hidden_size=8), ["a", "b"])
    return classifier.save_pretrained(tmp_path_factory.mktemp("devices") / "classifier")


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda:0"), (False, True, "mps"), (False, False, "cpu")])
def test_from_pretrained_picks_the_device_as_sentence_transformers_does(saved, monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    chosen = []
    real_open_body = threephase.classifier.open_body

    def open_body(path, device=None, **kwargs):
        chosen.append(device)
        return real_open_body(path, device="cpu", **kwargs)  # this machine has only the CPU

    monkeypatch.setattr(threephase.classifier, "open_body", open_body)
    ThreePhaseClassifier.from_pretrained(saved)
    assert chosen == [expected]
    ThreePhaseClassifier.from_pretrained(saved, device="cpu")  # a device given is kept
    assert chosen == [expected, "cpu"]
