"""The classifier: a body plus the 2-layer MLP head, saved, loaded and pushed like a Hugging Face model.

A saved classifier is a folder (and a Hub repository) whose root is the body, a sentence-transformers model, so that
``SentenceTransformer(folder_or_repo_id)`` gives its sentence embeddings. Beside the body's files::

    head.safetensors          the head's weights
    config_threephase.json    head settings, id2label / label2id, the run's settings and test metrics
    README.md                 the model card (library_name: sentence-transformers)

``config.json`` is the body's transformers config, so threephase's own settings live in ``config_threephase.json``
(named like ``config_sentence_transformers.json``). Folders of the first layout (``body/``, our settings in
``config.json``) still load.

Why not ``huggingface_hub.ModelHubMixin``: its ``save_pretrained`` deletes and rewrites ``config.json`` (here the
body's) and writes in place, not atomically, and its ``from_pretrained`` reads ``config.json`` back as the
constructor's arguments. The hub primitives it is built on (``snapshot_download``, ``HfApi.upload_folder``) are used
directly instead.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import get_device_name
from torch import nn

from .errors import ThreePhaseError
from .precision import autocast, check_precision, resolve_precision
from .model_card import REPO_ID_PLACEHOLDER, model_card
from .models import hub_offline, open_body
from .records import atomic_dir, atomic_write_text

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
HEAD_FILE = "head.safetensors"
SETTINGS_FILE = "config_threephase.json"
# What from_pretrained downloads: weights as safetensors only (no pickles), configs, tokenizer files (*.txt vocabularies,
# *.model sentencepiece), the card; never code.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.md", "*.model"]


class MLPHead(nn.Module):
    """Linear → activation → dropout → Linear (eq. 7-8). ``activation=None`` gives the authors' code (no activation);
    ``hidden_size=None`` a single linear layer (the ``logreg`` baseline's head)."""

    def __init__(self, input_size: int, num_labels: int, hidden_size: int | None = 100,
                 activation: str | None = "relu", dropout: float = 0.3):
        super().__init__()
        self.settings = {"input_size": input_size, "num_labels": num_labels, "hidden_size": hidden_size,
                         "activation": activation, "dropout": dropout}
        if hidden_size is None:
            self.layers = nn.Sequential(nn.Linear(input_size, num_labels))
            return
        layers: list[nn.Module] = [nn.Linear(input_size, hidden_size)]
        if activation is not None:
            layers.append(ACTIVATIONS[activation]())
        layers += [nn.Dropout(dropout), nn.Linear(hidden_size, num_labels)]
        self.layers = nn.Sequential(*layers)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings)


class ClassificationLoss(nn.Module):
    """Softmax cross-entropy of the head on the body's pooled embedding (eq. 9); the head trains as part of the loss."""

    def __init__(self, body: SentenceTransformer, head: MLPHead, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.model = body
        self.head = head
        self.cross_entropy = nn.CrossEntropyLoss(weight=class_weights)

    def forward(self, sentence_features, labels):
        (features,) = sentence_features
        return self.cross_entropy(self.head(self.model(features)["sentence_embedding"]), labels.long())


class ThreePhaseClassifier:
    """A text classifier made of a sentence-transformers body and an MLP head.

    Call it like a transformers text-classification pipeline, or ask for label names and probabilities:

    >>> clf = ThreePhaseClassifier.from_pretrained("runs/snips2-3p")  # doctest: +SKIP
    >>> clf("play some jazz")  # doctest: +SKIP
    [{'label': 'PlayMusic', 'score': 0.98}]
    >>> clf.predict(["play some jazz"])  # doctest: +SKIP
    ['PlayMusic']
    """

    def __init__(self, body: SentenceTransformer, head: MLPHead, label_names: Sequence[str],
                 training: dict[str, Any] | None = None, precision: str = "auto"):
        if head.settings["num_labels"] != len(label_names):
            raise ThreePhaseError(
                f"The head has {head.settings['num_labels']} outputs but {len(label_names)} label names were given."
            )
        self.body = body
        self.head = head.to(body.device)
        self.label_names = list(label_names)
        self.training = training or {}
        check_precision(precision)
        # The format the body encodes in (threephase.precision; auto: bf16 where the device computes it fast). A
        # runtime choice, not saved: the weights stay fp32, and each machine that loads them picks its own.
        self.precision = precision

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}

    @property
    def device(self) -> torch.device:
        return self.body.device

    def to(self, device: str | torch.device) -> ThreePhaseClassifier:
        self.body.to(device)
        self.head.to(device)
        return self

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool = False) -> torch.Tensor:
        """The body's pooled embeddings of ``texts`` (fp32; computed in ``precision``). sentence-transformers sorts
        the texts by length before batching, so each batch pads to similar lengths."""
        with autocast(resolve_precision(self.precision, self.device), self.device):
            vectors = self.body.encode(list(texts), batch_size=batch_size, convert_to_tensor=True,
                                       show_progress_bar=show_progress_bar)
        return vectors.float()

    def logits(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        if isinstance(texts, str):
            raise ThreePhaseError("Pass a list of texts, e.g. predict([text]), not a single string.")
        if len(texts) == 0:
            return torch.empty(0, len(self.label_names))
        self.head.eval()
        with torch.inference_mode():
            return self.head(self.encode(texts, batch_size=batch_size)).float().cpu()

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape (len(texts), number of labels), columns in ``label_names`` order."""
        return torch.softmax(self.logits(texts, batch_size), dim=-1).numpy()

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        """The most probable label name for each text."""
        return [self.label_names[i] for i in self.logits(texts, batch_size).argmax(dim=-1).tolist()]

    def __call__(self, texts: str | Sequence[str], top_k: int | None = 1, batch_size: int = 64):
        """What a transformers ``text-classification`` pipeline returns: ``{"label", "score"}`` dicts, best first.

        A string gives a list of ``top_k`` dicts. A list of texts gives one dict per text when ``top_k`` is 1, and
        one list of ``top_k`` dicts per text otherwise. ``top_k=None`` gives every label.
        """
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise ThreePhaseError(f"top_k must be a positive integer or None (every label), got {top_k!r}.")
        single = isinstance(texts, str)
        probabilities = self.predict_proba([texts] if single else list(texts), batch_size)
        k = len(self.label_names) if top_k is None else min(top_k, len(self.label_names))
        ranked = [[{"label": self.label_names[i], "score": float(row[i])} for i in np.argsort(-row, kind="stable")[:k]]
                  for row in probabilities]
        if single:
            return ranked[0]
        return [scores[0] for scores in ranked] if top_k == 1 else ranked

    def config(self) -> dict[str, Any]:
        """threephase's settings of this classifier, as written to ``config_threephase.json``."""
        return {
            "architecture": "ThreePhaseClassifier",
            "head": self.head.settings,
            "id2label": {str(i): name for i, name in self.id2label.items()},
            "label2id": self.label2id,
            "training": self.training,
        }

    def save_pretrained(self, save_directory: str | os.PathLike, repo_id: str | None = None) -> Path:
        """Write the classifier folder atomically (a temporary folder, then a rename).

        ``repo_id`` goes into the model card's usage snippets (default: a placeholder to replace)."""
        with atomic_dir(save_directory) as tmp:
            self.body.save_pretrained(str(tmp), safe_serialization=True, create_model_card=False)
            save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, str(tmp / HEAD_FILE))
            atomic_write_text(tmp / SETTINGS_FILE, json.dumps(self.config(), indent=2) + "\n")
            atomic_write_text(tmp / "README.md", model_card(self.config(), repo_id or REPO_ID_PLACEHOLDER))
        return Path(save_directory)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, device: str | None = None,
                        revision: str | None = None, token: str | None = None,
                        precision: str = "auto") -> ThreePhaseClassifier:
        """Load a classifier folder, a run folder (its ``classifier/``), or a Hub repository.

        Only safetensors weights are read, and no remote code runs. ``device`` None picks it as sentence-transformers
        does: CUDA, else Apple's MPS, else the CPU. ``precision`` is the format predictions compute in
        (:mod:`threephase.precision`).
        """
        path = _local_folder(path_or_repo_id, revision, token)
        if not (path / SETTINGS_FILE).is_file() and (path / "classifier").is_dir():
            path = path / "classifier"  # a run folder
        if (path / SETTINGS_FILE).is_file():
            settings, body_path = json.loads((path / SETTINGS_FILE).read_text()), path
        elif (path / "config.json").is_file() and (path / "body").is_dir():
            settings, body_path = json.loads((path / "config.json").read_text()), path / "body"  # the first layout
        else:
            settings, body_path = {}, path
        if "head" not in settings or not (path / HEAD_FILE).is_file():
            raise ThreePhaseError(
                f"{str(path)!r} is not a saved classifier (it needs {SETTINGS_FILE}, {HEAD_FILE} and the body's "
                "sentence-transformers files): pass the folder that ThreePhaseClassifier.save_pretrained or "
                "`threephase run` wrote, or its run folder."
            )
        body = open_body(str(body_path), device=device or get_device_name())
        head = MLPHead(**settings["head"])
        head.load_state_dict(load_file(str(path / HEAD_FILE)))
        labels = [settings["id2label"][str(i)] for i in range(len(settings["id2label"]))]
        return cls(body, head, labels, settings.get("training"), precision=precision)

    def push_to_hub(self, repo_id: str, *, private: bool = False, token: str | None = None,
                    commit_message: str = "Upload ThreePhaseClassifier") -> str:
        """Save to a temporary folder and upload it (model card included) to ``repo_id``; return the commit URL."""
        from huggingface_hub import HfApi

        save_instead = ("To keep it locally instead, call save_pretrained('my-classifier') (a run saved it already, in "
                        "its folder's classifier/), and push that folder later from a machine that reaches the Hub.")
        if hub_offline():
            raise ThreePhaseError(
                f"push_to_hub uploads to the Hugging Face Hub, and HF_HUB_OFFLINE=1 forbids reaching it: unset "
                f"HF_HUB_OFFLINE (and log in with `hf auth login`) to upload {repo_id!r}. {save_instead}"
            )
        api = HfApi(token=token)
        try:
            repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
            with tempfile.TemporaryDirectory() as tmp:
                folder = self.save_pretrained(Path(tmp) / "classifier", repo_id=repo_id)
                return str(api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                                             commit_message=commit_message))
        except ThreePhaseError:
            raise
        except Exception as err:  # noqa: BLE001 - the Hub client raises many types for "no network" and "no rights"
            raise ThreePhaseError(
                f"Could not upload to {repo_id!r} on the Hugging Face Hub ({type(err).__name__}: {err}). Check the "
                f"network, the id and your token (`hf auth login`). {save_instead}"
            ) from None


def _local_folder(path_or_repo_id: str | os.PathLike, revision: str | None, token: str | None) -> Path:
    """A local folder as it is; a Hub id downloaded (safetensors, configs, tokenizer files and the card only)."""
    path = Path(path_or_repo_id).expanduser()
    if path.exists():
        return path
    name = str(path_or_repo_id)
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ThreePhaseError(f"No classifier at {str(path)!r}: give a run or classifier folder, or a Hub id "
                              "(owner/name).")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, revision=revision, token=token, allow_patterns=HUB_PATTERNS))
    except Exception as err:  # the Hub client raises many types for "no network" and "no such repository"
        raise ThreePhaseError(
            f"Could not download the classifier {name!r} from the Hugging Face Hub ({type(err).__name__}: {err}). "
            "Check the id (and your token for a private repository) and the network; with HF_HUB_OFFLINE=1 only "
            "a copy already in the Hub cache loads. Or pass a local folder."
        ) from None
