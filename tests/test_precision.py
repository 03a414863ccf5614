"""The precision setting: what auto picks on which hardware, what each phase and predict then compute in."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from threephase import ThreePhaseClassifier, load_body, preset_config
from threephase import precision as precision_module
from threephase.classifier import MLPHead
from threephase.config import RunConfig
from threephase.errors import ThreePhaseError
from threephase.notebook import recorded_precision, saved_runs
from threephase.precision import resolve_precision
from threephase.training import training_arguments, warn_if_cores_busy

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def fake_cpu(monkeypatch, *, amx: bool = False, avx512_bf16: bool = False) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)


def test_auto_picks_fp32_on_a_cpu_without_bf16_hardware(monkeypatch):
    fake_cpu(monkeypatch)
    assert resolve_precision("auto", "cpu") == "fp32"


@pytest.mark.parametrize("flags", [{"amx": True}, {"avx512_bf16": True}])
def test_auto_picks_bf16_on_a_cpu_with_amx_or_avx512_bf16(monkeypatch, flags):
    fake_cpu(monkeypatch, **flags)
    assert resolve_precision("auto", "cpu") == "bf16"


@pytest.mark.parametrize("supported, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_a_gpu_follows_its_bf16_support(monkeypatch, supported, expected):
    monkeypatch.setattr(precision_module, "device_type", lambda device: "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    assert resolve_precision("auto", "cuda") == expected


def test_explicit_choices_are_kept_and_impossible_ones_refused(monkeypatch, caplog):
    fake_cpu(monkeypatch)
    precision_module._warn_slow_bf16.cache_clear()
    assert resolve_precision("fp32", "cpu") == "fp32"
    with caplog.at_level(logging.WARNING):
        assert resolve_precision("bf16", "cpu") == "bf16"  # the user's choice, with a warning that it is slow here
    assert "many times slower" in caplog.text
    with pytest.raises(ThreePhaseError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ThreePhaseError, match="Unknown precision 'half'"):
        RunConfig(precision="half").validate()


def test_the_precision_reaches_the_trainer_and_the_phase_settings_still_win(monkeypatch, tmp_path):
    fake_cpu(monkeypatch, amx=True)
    config = preset_config("cpu", "snips2")
    args = training_arguments(config.cl, output_dir=str(tmp_path), device="cpu", precision="auto")
    assert args.bf16 and not args.fp16
    assert not training_arguments(config.cl, output_dir=str(tmp_path), device="cpu", precision="fp32").bf16
    config.cl.training_args = {"bf16": False}
    assert not training_arguments(config.cl, output_dir=str(tmp_path), device="cpu", precision="bf16").bf16


def test_the_paper_preset_leaves_precision_to_the_setting():
    config = preset_config("paper", "snips2")
    assert config.precision == "auto"
    assert all("bf16" not in getattr(config, phase).training_args for phase in ("dae", "cl", "ft"))


def test_predict_in_bf16_keeps_fp32_weights_and_agrees_with_fp32(monkeypatch):
    body = load_body(MODEL, max_seq_length=16, device="cpu")
    torch.manual_seed(0)
    head = MLPHead(body.get_embedding_dimension(), 3)
    classifier = ThreePhaseClassifier(body, head, ["a", "b", "c"], precision="fp32")
    texts = ["play some jazz", "will it rain tomorrow in paris", "book a table for two"]
    fp32 = classifier.encode(texts)
    classifier.precision = "bf16"
    bf16 = classifier.encode(texts)
    assert bf16.dtype == torch.float32 and all(p.dtype == torch.float32 for p in body.parameters())
    assert torch.nn.functional.cosine_similarity(fp32, bf16).min() > 0.98
    assert not torch.equal(fp32, bf16)  # bf16 did compute: its rounding shows


def test_saved_runs_match_on_the_precision_they_computed_in(monkeypatch, tmp_path):
    fake_cpu(monkeypatch)  # auto means fp32 here
    config = preset_config("cpu", "snips2", variant="ft", seed=0)
    settings = {k: v for k, v in config.to_dict().items() if k not in ("output_dir", "device")}
    before = {k: v for k, v in settings.items() if k != "precision"}  # a run from before the setting existed
    lines = [{"config": before, "record": {"accuracy": 0.9}},
             {"config": settings | {"seed": 1}, "record": {"accuracy": 0.8, "precision": "bf16"}}]
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert recorded_precision(lines[0]) == "fp32"
    found = saved_runs(path, [config, preset_config("cpu", "snips2", variant="ft", seed=1)])
    assert found[0] == {"accuracy": 0.9} and found[1] is None  # the bf16 run is not what auto computes here
    fake_cpu(monkeypatch, amx=True)
    assert saved_runs(path, [config])[0] is None  # on a machine where auto means bf16, the fp32 run is not reused


def test_a_run_beside_busy_cores_warns_with_the_fix(monkeypatch, caplog):
    import threephase.training as training

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(training.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(training.torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(training, "busy_cores", lambda interval=0.2: 1.8)
    with caplog.at_level(logging.WARNING):
        warn_if_cores_busy()
    assert "OMP_NUM_THREADS=1" in caplog.text
    caplog.clear()
    monkeypatch.setattr(training, "busy_cores", lambda interval=0.2: 0.1)
    with caplog.at_level(logging.WARNING):
        warn_if_cores_busy()
    assert caplog.text == ""
    monkeypatch.setattr(training, "busy_cores", lambda interval=0.2: 1.8)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user split the cores already
    with caplog.at_level(logging.WARNING):
        warn_if_cores_busy()
    assert caplog.text == ""


def test_phase_1_s_decoder_computes_in_the_run_s_precision(monkeypatch, tmp_path):
    # accelerate puts autocast around the body's forward only: phase 1's decoder, inside the loss, stayed in fp32
    # under bf16, and phase 1 gained nothing from it.
    from threephase import phases

    dtypes = []

    class Recorded(phases.TiedDenoisingAutoEncoderLoss):
        def __init__(self, body):
            super().__init__(body)
            self.decoder.get_output_embeddings().register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))

    monkeypatch.setattr(phases, "TiedDenoisingAutoEncoderLoss", Recorded)
    monkeypatch.setattr(precision_module, "cpu_has_fast_bf16", lambda: True)  # no slowness warning on any CPU
    body = load_body(MODEL, max_seq_length=16, device="cpu")
    config = preset_config("cpu", "snips2").dae
    config.num_train_epochs, config.per_device_train_batch_size = 1, 4
    texts = ["play some jazz", "will it rain tomorrow in paris", "book a table for two", "add this song to my list"]
    phases.train_dae(body, texts, config, output_dir=str(tmp_path / "bf16"), device="cpu", precision="bf16")
    assert dtypes == [torch.bfloat16]
    assert all(p.dtype == torch.float32 for p in body.parameters())
    # and once trained, the body computes in fp32 again: accelerate's autocast patch on its forward is gone (it
    # made a trained body's encode, and a reloaded copy's, disagree)
    layer = body[0].auto_model.encoder.layer[0].output.dense
    seen = []
    handle = layer.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    body.encode(texts[:1])
    handle.remove()
    assert seen == [torch.float32]
    dtypes.clear()
    phases.train_dae(body, texts, config, output_dir=str(tmp_path / "fp32"), device="cpu", precision="fp32")
    assert dtypes == [torch.float32]
