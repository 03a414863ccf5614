"""Baselines on the same data draw as the variants: ``logreg``, a class-balanced logistic regression on the frozen
pre-trained body's embeddings.

It answers the first question a reader asks of a fine-tuning method: how far does the body get with no training at
all? Its classifier is a :class:`~threephase.classifier.ThreePhaseClassifier` whose head is the regression's single
linear layer, so it saves, loads and predicts like any other.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sklearn.linear_model import LogisticRegression

from .classifier import MLPHead, ThreePhaseClassifier


def train_logreg(body: SentenceTransformer, train_data: Dataset, *, seed: int = 42,
                 batch_size: int = 64) -> tuple[ThreePhaseClassifier, dict[str, Any]]:
    """Fit ``LogisticRegression(class_weight="balanced")`` on the body's embeddings of the training texts."""
    start = time.perf_counter()
    label_names = train_data.features["label"].names
    vectors = body.encode(list(train_data["text"]), batch_size=batch_size, convert_to_numpy=True)
    labels = np.asarray(train_data["label"])
    model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed).fit(vectors, labels)
    weight, bias = np.zeros((len(label_names), vectors.shape[1])), np.zeros(len(label_names))
    if len(model.classes_) == 2:  # one score z for the second class: softmax([0, z]) is the regression's sigmoid
        weight[model.classes_[1]], bias[model.classes_[1]] = model.coef_[0], model.intercept_[0]
    else:
        weight[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
    head = MLPHead(vectors.shape[1], len(label_names), hidden_size=None)
    with torch.no_grad():
        head.layers[0].weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head.layers[0].bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    classifier = ThreePhaseClassifier(body, head.eval(), label_names)
    return classifier, {"wall_time_s": time.perf_counter() - start, "train_accuracy": float(model.score(vectors, labels)),
                        "iterations": int(np.max(model.n_iter_))}
