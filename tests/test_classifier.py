"""The classifier as the Hugging Face ecosystem expects it: called like a pipeline, saved as a sentence-transformers
model with a head beside it, a model card whose snippets run, loaded from folders and (faked) Hub ids, pushed to a
(fake) Hub. The classifier here is untrained (the offline body and a seeded head), so the tests take seconds."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from threephase import MLPHead, ThreePhaseClassifier, ThreePhaseError, load_body, preset_config
from threephase.classifier import HEAD_FILE, HUB_PATTERNS, SETTINGS_FILE
from threephase.model_card import REPO_ID_PLACEHOLDER

TEXTS = ["wake me up at seven", "play some jazz", "will it snow tomorrow"]


@pytest.fixture(scope="module")
def classifier():
    body = load_body("sentence-transformers/all-MiniLM-L6-v2", max_seq_length=32)
    torch.manual_seed(0)
    head = MLPHead(body.get_embedding_dimension(), 3, hidden_size=16)
    training = {"config": preset_config("cpu", "snips2", variant="ft", seed=0).to_dict(), "metrics": {"accuracy": 0.5}}
    return ThreePhaseClassifier(body, head, ["alarm", "music", "weather"], training)


@pytest.fixture(scope="module")
def saved(classifier, tmp_path_factory):
    return classifier.save_pretrained(tmp_path_factory.mktemp("saved") / "clf")


def test_call_returns_what_a_text_classification_pipeline_returns(classifier):
    probabilities = classifier.predict_proba(TEXTS)
    best = classifier(TEXTS[0])  # a string: a list of top_k dicts
    assert best == [{"label": classifier.predict(TEXTS[:1])[0], "score": pytest.approx(probabilities[0].max())}]
    one_each = classifier(TEXTS)  # a list, top_k=1: one dict per text
    assert [d["label"] for d in one_each] == classifier.predict(TEXTS)
    assert all(isinstance(d["score"], float) for d in one_each)
    two_each = classifier(TEXTS, top_k=2)  # a list, top_k>1: a list of dicts per text, best first
    assert [len(scores) for scores in two_each] == [2, 2, 2]
    every = classifier(TEXTS[1], top_k=None)
    assert sorted(d["label"] for d in every) == classifier.label_names
    assert [d["score"] for d in every] == sorted((d["score"] for d in every), reverse=True)
    assert sum(d["score"] for d in every) == pytest.approx(1, abs=1e-5)
    assert every[:2] == two_each[1]
    assert classifier(TEXTS, top_k=10) == classifier(TEXTS, top_k=None)  # at most every label
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ThreePhaseError, match="top_k"):
            classifier(TEXTS, top_k=bad)


def test_saved_folder_is_a_sentence_transformers_model_with_the_head_beside_it(classifier, saved, monkeypatch):
    from huggingface_hub import ModelCard
    from sentence_transformers import SentenceTransformer

    names = {p.name for p in saved.iterdir()}
    assert {"modules.json", "config_sentence_transformers.json", "model.safetensors", "config.json", HEAD_FILE,
            SETTINGS_FILE, "README.md"} <= names
    assert not list(saved.rglob("*.bin")) and not list(saved.rglob("*.py"))  # no pickles, no code
    assert "model_type" in json.loads((saved / "config.json").read_text())  # the body's transformers config
    settings = json.loads((saved / SETTINGS_FILE).read_text())
    assert settings["id2label"] == {"0": "alarm", "1": "music", "2": "weather"} and settings["head"]["hidden_size"] == 16
    embeddings = SentenceTransformer(str(saved), device="cpu").encode(TEXTS, convert_to_tensor=True)
    monkeypatch.setattr(classifier, "precision", "fp32")  # as plain sentence-transformers computes (auto: bf16 on AMX)
    assert torch.allclose(embeddings, classifier.encode(TEXTS).cpu(), atol=1e-5)
    card = ModelCard.load(saved / "README.md")
    assert card.data.library_name == "sentence-transformers" and card.data.pipeline_tag == "text-classification"
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"


def run_card_snippets(folder, repo_id=REPO_ID_PLACEHOLDER) -> str:
    """Execute the card's python blocks as written, with the repository id replaced by the folder; return stdout."""
    card = (folder / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    assert len(blocks) == 2 and all(repo_id in block for block in blocks)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block.replace(repo_id, str(folder)), "README.md", "exec"), {})
    return printed.getvalue()


def test_card_snippets_run_as_written(saved, classifier):
    printed = run_card_snippets(saved)
    assert "'label':" in printed and "'score':" in printed
    assert f"({len(['a', 'b'])}, {classifier.body.get_embedding_dimension()})" in printed  # the embeddings' shape


def test_loads_from_a_run_folder_and_from_the_first_layout(classifier, saved, tmp_path):
    expected = classifier.predict_proba(TEXTS)
    run_folder = tmp_path / "run"
    shutil.copytree(saved, run_folder / "classifier")
    (run_folder / "config.json").write_text("{}")  # a run folder's own config.json
    assert np.allclose(ThreePhaseClassifier.from_pretrained(run_folder).predict_proba(TEXTS), expected, atol=1e-6)

    old = tmp_path / "old"  # the first layout: body/, and our settings in config.json
    classifier.body.save_pretrained(str(old / "body"), safe_serialization=True)
    save_file({k: v.contiguous() for k, v in classifier.head.state_dict().items()}, str(old / HEAD_FILE))
    (old / "config.json").write_text(json.dumps(classifier.config()))
    reloaded = ThreePhaseClassifier.from_pretrained(old)
    assert np.allclose(reloaded.predict_proba(TEXTS), expected, atol=1e-6)
    assert reloaded.label_names == classifier.label_names and reloaded.training == classifier.training

    body_only = tmp_path / "body-only"
    classifier.body.save_pretrained(str(body_only))
    with pytest.raises(ThreePhaseError, match="not a saved classifier"):
        ThreePhaseClassifier.from_pretrained(body_only)


def test_loads_from_a_hub_id_downloading_no_pickles_and_no_code(classifier, saved, tmp_path, monkeypatch):
    import huggingface_hub

    repo = tmp_path / "repo"
    shutil.copytree(saved, repo)
    (repo / "pytorch_model.bin").write_bytes(b"a pickle")
    (repo / "modeling_evil.py").write_text("raise SystemExit")
    calls = []

    def snapshot_download(repo_id, revision=None, token=None, allow_patterns=None, **kwargs):
        calls.append((repo_id, revision, allow_patterns))
        cache = tmp_path / "cache" / repo_id.replace("/", "--")
        for file in repo.rglob("*"):
            name = file.relative_to(repo).as_posix()
            if file.is_file() and any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
                (cache / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(file, cache / name)
        return str(cache)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    loaded = ThreePhaseClassifier.from_pretrained("someone/snips2-threephase", revision="v1")
    assert calls == [("someone/snips2-threephase", "v1", HUB_PATTERNS)]
    downloaded = {p.name for p in (tmp_path / "cache" / "someone--snips2-threephase").rglob("*")}
    assert "pytorch_model.bin" not in downloaded and "modeling_evil.py" not in downloaded
    assert {HEAD_FILE, SETTINGS_FILE, "model.safetensors", "README.md"} <= downloaded
    assert np.allclose(loaded.predict_proba(TEXTS), classifier.predict_proba(TEXTS), atol=1e-6)

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ThreePhaseError, match="Could not download the classifier 'someone/other'"):
        ThreePhaseClassifier.from_pretrained("someone/other")


def test_push_to_hub_uploads_the_folder_with_its_card(classifier, monkeypatch):
    import huggingface_hub

    pushed = {}

    class FakeHfApi:
        def __init__(self, token=None):
            pushed["token"] = token

        def create_repo(self, repo_id, private=False, exist_ok=False, **kwargs):
            pushed["repo"] = (repo_id, private, exist_ok)
            return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

        def upload_folder(self, repo_id, folder_path, commit_message=None, repo_type=None, **kwargs):
            folder = __import__("pathlib").Path(folder_path)
            pushed["files"] = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
            pushed["card"] = (folder / "README.md").read_text()
            pushed["repo_type"] = repo_type
            return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the fake Hub is reachable; offline, push_to_hub refuses (tested)
    url = classifier.push_to_hub("someone/snips2-threephase", private=True, token="t")
    assert url == "https://huggingface.co/someone/snips2-threephase/commit/abc"
    assert pushed["repo"] == ("someone/snips2-threephase", True, True) and pushed["token"] == "t"
    assert {"README.md", HEAD_FILE, SETTINGS_FILE, "modules.json", "model.safetensors"} <= pushed["files"]
    assert pushed["repo_type"] == "model"
    assert 'from_pretrained("someone/snips2-threephase")' in pushed["card"]
    assert 'SentenceTransformer("someone/snips2-threephase")' in pushed["card"]
    assert "library_name: sentence-transformers" in pushed["card"]
