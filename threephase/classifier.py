"""The classifier: a body plus the 2-layer MLP head, saved, loaded and pushed like a Hugging Face model.

A saved classifier is a folder::

    body/              the body, a sentence-transformers folder (weights in safetensors)
    head.safetensors   the head's weights
    config.json        head settings, id2label / label2id, the run's settings
    README.md          the model card
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
from torch import nn

from .errors import ThreePhaseError
from .model_card import model_card
from .models import open_body
from .records import atomic_dir, atomic_write_text

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLPHead(nn.Module):
    """Linear → activation → dropout → Linear (eq. 7-8). ``activation=None`` gives the authors' code (no activation)."""

    def __init__(self, input_size: int, num_labels: int, hidden_size: int = 100, activation: str | None = "relu",
                 dropout: float = 0.3):
        super().__init__()
        self.settings = {"input_size": input_size, "num_labels": num_labels, "hidden_size": hidden_size,
                         "activation": activation, "dropout": dropout}
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

    >>> clf = ThreePhaseClassifier.from_pretrained("runs/snips2-3p")  # doctest: +SKIP
    >>> clf.predict(["play some jazz"])  # doctest: +SKIP
    ['PlayMusic']
    """

    def __init__(self, body: SentenceTransformer, head: MLPHead, label_names: Sequence[str],
                 training: dict[str, Any] | None = None):
        if head.settings["num_labels"] != len(label_names):
            raise ThreePhaseError(
                f"The head has {head.settings['num_labels']} outputs but {len(label_names)} label names were given."
            )
        self.body = body
        self.head = head.to(body.device)
        self.label_names = list(label_names)
        self.training = training or {}

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
        """The body's pooled embeddings of ``texts``."""
        return self.body.encode(list(texts), batch_size=batch_size, convert_to_tensor=True,
                                show_progress_bar=show_progress_bar)

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

    def config(self) -> dict[str, Any]:
        return {
            "architecture": "ThreePhaseClassifier",
            "head": self.head.settings,
            "id2label": {str(i): name for i, name in self.id2label.items()},
            "label2id": self.label2id,
            "training": self.training,
        }

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write the classifier folder atomically (a temporary folder, then a rename)."""
        with atomic_dir(save_directory) as tmp:
            self.body.save_pretrained(str(tmp / "body"), safe_serialization=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()},
                      str(tmp / "head.safetensors"))
            atomic_write_text(tmp / "config.json", json.dumps(self.config(), indent=2))
            atomic_write_text(tmp / "README.md", model_card(self.config()))
        return Path(save_directory)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, device: str | None = None,
                        revision: str | None = None, token: str | None = None) -> ThreePhaseClassifier:
        """Load a classifier folder, a run folder (its ``classifier/``), or a Hub repository.

        Only safetensors weights are read, and no remote code runs.
        """
        path = Path(path_or_repo_id).expanduser()
        if not path.exists():
            if str(path_or_repo_id).startswith((".", "/", "~")) or str(path_or_repo_id).count("/") != 1:
                raise ThreePhaseError(f"No classifier at {str(path)!r}: give a run or classifier folder, or a Hub id.")
            from huggingface_hub import snapshot_download

            # Weights as safetensors only, no code; *.model covers sentencepiece tokenizers.
            path = Path(snapshot_download(str(path_or_repo_id), revision=revision, token=token,
                                          allow_patterns=["*.json", "*.safetensors", "*.txt", "*.md", "*.model"]))
        if (path / "classifier" / "config.json").is_file():
            path = path / "classifier"
        if not (path / "config.json").is_file() or not (path / "head.safetensors").is_file():
            raise ThreePhaseError(
                f"{str(path)!r} is not a saved classifier (it needs config.json, head.safetensors and body/): "
                "pass the folder that ThreePhaseClassifier.save_pretrained or `threephase run` wrote."
            )
        config = json.loads((path / "config.json").read_text())
        body = open_body(str(path / "body"), device=device)
        head = MLPHead(**config["head"])
        head.load_state_dict(load_file(str(path / "head.safetensors")))
        labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        return cls(body, head, labels, config.get("training"))

    def push_to_hub(self, repo_id: str, *, private: bool = False, token: str | None = None,
                    commit_message: str = "Upload ThreePhaseClassifier") -> str:
        """Save to a temporary folder and upload it (model card included) to ``repo_id``; return the commit URL."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "classifier")
            return str(api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message))

