"""What long, multi-GPU, paper-scale runs depend on: tied DAE weights, pooling, warm-up, devices, presets, trainer
settings, the data seed, a frozen body that encodes once, Joint's balance."""

import hashlib
import logging
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer

from threephase import (CLConfig, DAEConfig, FTConfig, ThreePhaseError, apply_overrides, load_body, load_data,
                        preset_config, run, train_cl, train_ft)
from threephase.classifier import ThreePhaseClassifier
from threephase.config import parse_set_options
from threephase.data import data_fingerprint
from threephase.finetune import first_epoch_warmup
from threephase.models import packaged_model_path, with_pooling
from threephase.phases import JointLoss, TiedDenoisingAutoEncoderLoss
from threephase.presets import paper_hyperparameters
from threephase.training import training_arguments


def weights_hash(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode() + tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture
def body():
    return load_body(packaged_model_path(), max_seq_length=32)


class _Trainer:
    """Just the trainer's rule for putting a (DDP-)wrapped model into a loss."""

    override_model_in_loss = SentenceTransformerTrainer.override_model_in_loss


def test_trainer_puts_the_wrapped_body_into_the_dae_and_joint_losses(body):
    wrapped = torch.nn.Sequential(body)  # stands in for DistributedDataParallel(body)
    dae = _Trainer().override_model_in_loss(TiedDenoisingAutoEncoderLoss(body), wrapped)
    assert dae.model is wrapped and dae.encoder is wrapped
    joint = _Trainer().override_model_in_loss(JointLoss(body), wrapped)
    assert joint.model is joint.dae.model is joint.cl.model is wrapped


def test_phase1_starts_from_the_body_in_memory(body):
    embeddings = body.transformers_model.embeddings.word_embeddings.weight
    with torch.no_grad():
        embeddings.mul_(0.5)  # an edit that exists in memory only
    edited = weights_hash(body)
    loss = TiedDenoisingAutoEncoderLoss(body)
    assert weights_hash(body) == edited
    decoder_embeddings = loss.decoder.bert.embeddings.word_embeddings.weight
    assert decoder_embeddings.data_ptr() == body.transformers_model.embeddings.word_embeddings.weight.data_ptr()


def tiny_bert(folder: Path, with_head: bool) -> Path:
    """A tiny BERT checkpoint (safetensors) with its tokenizer; with its pre-trained MLM head or without one."""
    from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "play", "some", "jazz", "book", "a", "table"]
    (folder / "vocab.txt").parent.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    (BertForMaskedLM if with_head else BertModel)(config).save_pretrained(folder, safe_serialization=True)
    return folder


def test_phase1_decoder_keeps_the_checkpoints_lm_head_and_the_body_in_memory(tmp_path):
    from safetensors.torch import load_file

    folder = tiny_bert(tmp_path / "mlm", with_head=True)
    saved = load_file(str(folder / "model.safetensors"))
    body = load_body(str(folder))  # a plain Transformer: mean pooling is added
    query = body.transformers_model.encoder.layer[0].attention.self.query.weight
    with torch.no_grad():
        query.add_(1.0)  # an edit that exists in memory only
    edited = query.detach().clone()
    loss = TiedDenoisingAutoEncoderLoss(body)
    head = loss.decoder.cls.predictions
    # The pre-trained head, as saved (not a random one) ...
    for name in ("transform.dense.weight", "transform.dense.bias", "transform.LayerNorm.weight", "bias"):
        assert torch.equal(head.get_parameter(name).detach(), saved[f"cls.predictions.{name}"]), name
    assert not torch.equal(edited, saved["bert.encoder.layer.0.attention.self.query.weight"])
    # ... and the body's weights as they are in memory, tied to the decoder's.
    tied = body.transformers_model.encoder.layer[0].attention.self.query.weight
    assert torch.equal(tied.detach(), edited)
    assert tied.data_ptr() == loss.decoder.bert.encoder.layer[0].attention.self.query.weight.data_ptr()


def test_phase1_says_when_the_checkpoint_has_no_lm_head(tmp_path, caplog):
    body = load_body(str(tiny_bert(tmp_path / "plain", with_head=False)))
    with caplog.at_level(logging.INFO, logger="threephase.phases"):
        TiedDenoisingAutoEncoderLoss(body)
    assert "has no LM head" in caplog.text and "starts random" in caplog.text


def test_pooling_replaces_only_the_pooling_module(body):
    names = [type(module).__name__ for module in body]
    assert names == ["Transformer", "Pooling", "Normalize"]
    cls_body = with_pooling(body, "cls")
    assert [type(module).__name__ for module in cls_body] == names
    assert cls_body[1].pooling_mode == "cls"
    norms = cls_body.encode(["play some jazz", "book a table"], convert_to_tensor=True).norm(dim=-1)
    assert torch.allclose(norms, torch.ones(2), atol=1e-5)


def test_warmup_is_a_fraction_of_the_first_epoch():
    config = FTConfig(per_device_train_batch_size=8, warmup_ratio=0.5, num_train_epochs=70)
    assert first_epoch_warmup(config, 80) == 5  # 10 steps per epoch, whatever the 70-epoch budget


def test_phase3_peaks_within_its_first_epoch(tiny_data, body):
    # patience 0 stops right after min_epochs: two epochs of a 70-epoch budget (a warm-up of 10% of the budget
    # would still be climbing then)
    config = FTConfig(learning_rate=1e-4, num_train_epochs=70, min_epochs=2, patience=0,
                      per_device_train_batch_size=16, warmup_ratio=0.5)
    _, report = train_ft(body, tiny_data["train"], tiny_data["validation"], config, seed=0, logging_steps=1)
    steps_per_epoch = -(-len(tiny_data["train"]) // 16)
    history = report["loss_history"]
    peak = max(history, key=lambda entry: entry["learning_rate"])
    assert peak["step"] <= steps_per_epoch, (peak, steps_per_epoch)
    assert len(report["epochs"]) == 2


@pytest.mark.parametrize("device", ["cuda:1", "cuda:3"])
def test_a_gpu_index_is_refused_with_the_fix(device, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # on a machine with GPUs (without one: refused)
    with pytest.raises(ThreePhaseError, match="CUDA_VISIBLE_DEVICES"):
        tiny_config(device=device).validate()
    tiny_config(device="cuda:0").validate()
    tiny_config(device="cuda").validate()


@pytest.mark.parametrize("model, dataset, says", [
    ("sentence-transformers/all-MiniLM-L12-v2", "snips2", None),
    ("FacebookAI/roberta-base", "sst2", None),
    ("someone/roberta-large-imdb", "sst2", "contains 'roberta'"),
    ("sentence-transformers/all-MiniLM-L12-v2", "imdb", "not a dataset of the paper"),
    ("sentence-transformers/all-MiniLM-L6-v2", "snips2", "not a model of the paper"),
    ("FacebookAI/roberta-base", "my_data", "not a dataset of the paper"),
])
def test_paper_preset_names_the_row_it_falls_back_to(caplog, model, dataset, says):
    with caplog.at_level(logging.INFO, logger="threephase.presets"):
        paper_hyperparameters(dataset, model)
    (record,) = caplog.records
    assert "Table 5 row" in record.message
    if says is None:
        assert record.levelno == logging.INFO
    else:
        assert record.levelno == logging.WARNING and says in record.message


def test_training_args_reach_the_trainer_from_the_command_line():
    config = apply_overrides(preset_config("cpu"), parse_set_options(
        ['dae.training_args={"gradient_accumulation_steps": 2}', "ft.training_args.report_to=tensorboard"]))
    assert config.dae.training_args == {"gradient_accumulation_steps": 2}
    assert config.ft.training_args == {"report_to": "tensorboard"}
    assert preset_config("cpu").dae.training_args == {}
    assert training_arguments(config.dae).gradient_accumulation_steps == 2
    with pytest.raises(ThreePhaseError, match="gradient_acumulation_steps"):
        training_arguments(DAEConfig(training_args={"gradient_acumulation_steps": 2}))
    with pytest.raises(ThreePhaseError, match="JSON object"):
        apply_overrides(preset_config("cpu"), {"cl.training_args": "[1]"}).validate()


def test_gradient_accumulation_halves_the_optimizer_steps(tiny_data, body):
    texts, labels = tiny_data["train"]["text"], tiny_data["train"]["label"]
    plain = CLConfig(pair_multiplier=1, per_device_train_batch_size=8)
    accumulated = CLConfig(pair_multiplier=1, per_device_train_batch_size=8,
                           training_args={"gradient_accumulation_steps": 2})
    steps = train_cl(body, texts, labels, plain, seed=0)["steps"]
    assert train_cl(body, texts, labels, accumulated, seed=0)["steps"] == -(-steps // 2)


def test_data_seed_draws_the_data_and_the_training_seed_does_not(data_dir):
    first, second = (preset_config("cpu", "snips2", seed=s) for s in (1, 2))
    assert first.data.seed == second.data.seed
    draw = lambda seed: data_fingerprint(load_data(dataset="snips2", data_dir=data_dir,  # noqa: E731
                                                   train_per_class=8, test_per_class=5, seed=seed))
    assert draw(0) == draw(0)
    assert draw(0)["train"] != draw(1)["train"]


def test_runs_record_the_data_fingerprint(tiny_data):
    first = run(tiny_config("ft", seed=1), data=tiny_data).metrics
    second = run(tiny_config("ft", seed=2), data=tiny_data).metrics
    assert first["data_fingerprint"] == second["data_fingerprint"] == data_fingerprint(tiny_data)
    assert set(first["data_fingerprint"]) == {"train", "validation", "test"}


def test_a_frozen_body_encodes_each_split_once(tiny_data, body, monkeypatch):
    calls = []
    encode = ThreePhaseClassifier.encode
    monkeypatch.setattr(ThreePhaseClassifier, "encode", lambda self, texts, **kw: calls.append(len(texts))
                        or encode(self, texts, **kw))
    before = weights_hash(body)
    config = FTConfig(head_learning_rate=1e-2, num_train_epochs=8, min_epochs=8, freeze_body=True,
                      per_device_train_batch_size=16)
    classifier, report = train_ft(body, tiny_data["train"], tiny_data["validation"], config, seed=0)
    assert calls == [len(tiny_data["train"]) + len(tiny_data["validation"])]  # one pass, whatever the epochs
    assert len(report["epochs"]) == 8 and report["encoded_once"]
    assert weights_hash(classifier.body) == before
    assert report["epochs"][report["best_epoch"] - 1]["validation_accuracy"] > 1 / 7 + 0.3


def test_joint_weighs_its_dae_part(tiny_data, body):
    body.eval()  # no dropout, so that the two losses see the same numbers
    texts = tiny_data["train"]["text"][:4]
    features = [body.preprocess(texts)] * 4
    full = JointLoss(body, dae_weight=1.0)
    half = JointLoss(body, dae_weight=0.5)
    with torch.no_grad():
        half.dae.decoder.load_state_dict(full.dae.decoder.state_dict())
        whole, halved = full(features, torch.ones(4)), half(features, torch.ones(4))
    assert float(halved["loss_dae"]) == pytest.approx(0.5 * float(whole["loss_dae"]), rel=1e-5)
    assert float(halved["loss_cl"]) == pytest.approx(float(whole["loss_cl"]), rel=1e-6)
    metrics = run(tiny_config("joint", joint__dae_weight=0.25), data=tiny_data).metrics
    assert metrics["phases"]["joint"]["dae_weight"] == 0.25


def test_frozen_body_warmup_counts_its_own_steps_under_several_processes(tiny_data, body, monkeypatch):
    # The frozen-body loop runs every batch in every process: its warm-up must not shrink with WORLD_SIZE.
    monkeypatch.setenv("WORLD_SIZE", "2")
    # No process group in this one process: the ranks' agreement on the best epoch is not what is tested here.
    monkeypatch.setattr("threephase.finetune.from_main_process", lambda value: value)
    config = FTConfig(head_learning_rate=1e-2, num_train_epochs=3, min_epochs=3, per_device_train_batch_size=16,
                      warmup_ratio=0.99, freeze_body=True)
    _, report = train_ft(body, tiny_data["train"], tiny_data["validation"], config, seed=0, logging_steps=1)
    steps_per_epoch = -(-len(tiny_data["train"]) // 16)
    peak = max(report["loss_history"], key=lambda entry: entry["learning_rate"])
    assert peak["step"] == round(0.99 * steps_per_epoch)
