"""Phase 1 (DAE), phase 2 (CL) and Joint: training data for each, and one function per phase.

Each function trains the body it is given in place and returns a report (loss history, steps, wall time).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections.abc import Sequence
from typing import Any

from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss, DenoisingAutoEncoderLoss
from torch import nn
from transformers.utils import logging as hf_logging

from .config import CLConfig, DAEConfig, ImbalanceConfig
from .imbalance import resize_dataset
from .noise import delete_words
from .pairs import available_pairs, build_pairs, num_pairs_for
from .training import train, training_arguments

logger = logging.getLogger(__name__)


class TiedDenoisingAutoEncoderLoss(DenoisingAutoEncoderLoss):
    """TSDAE with tied encoder and decoder that also trains through a DDP-wrapped body.

    The trainer swaps a wrapped model into a loss's ``model`` attribute; upstream's loss reads ``encoder``.
    """

    def __init__(self, body: SentenceTransformer):
        # Sentence-embedding checkpoints carry no LM head, so transformers reports the decoder's head as newly
        # initialised in a long table; that is expected here (TSDAE trains it), so keep the log readable.
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            super().__init__(body, tie_encoder_decoder=True)
        finally:
            hf_logging.set_verbosity(verbosity)
        self.model = body

    def forward(self, sentence_features, labels):
        self.encoder = self.model
        return super().forward(sentence_features, labels)


class JointLoss(nn.Module):
    """L_DAE + L_CL on one body (eq. 10): each row carries a DAE example and a pair."""

    def __init__(self, body: SentenceTransformer):
        super().__init__()
        self.model = body
        self.dae = TiedDenoisingAutoEncoderLoss(body)
        self.cl = CosineSimilarityLoss(body)

    def forward(self, sentence_features, labels):
        noisy, clean, first, second = sentence_features
        return {"loss_dae": self.dae([noisy, clean], None), "loss_cl": self.cl([first, second], labels)}


def dae_dataset(texts: Sequence[str], deletion_ratio: float, repetitions: int, seed: int) -> Dataset:
    """The text list repeated ``repetitions`` times, each time with freshly drawn noise (columns noisy, text)."""
    rng = random.Random(seed)
    noisy, clean = [], []
    for _ in range(repetitions):
        for text in texts:
            noisy.append(delete_words(text, deletion_ratio, rng))
            clean.append(text)
    return Dataset.from_dict({"noisy": noisy, "text": clean})


def pair_dataset(
    texts: Sequence[str], labels: Sequence[int], imbalance: ImbalanceConfig | None, cl: CLConfig, seed: int
) -> tuple[Dataset, dict[str, Any]]:
    """Resize the classes (unless ``imbalance`` is None), then build the scored pairs (sentence1, sentence2, score)."""
    if imbalance is None:
        resized_texts, resized_labels, source = list(texts), list(labels), list(range(len(texts)))
        sizes = None
    else:
        resized = resize_dataset(
            texts, labels, min_ratio=imbalance.min_ratio, max_ratio=imbalance.max_ratio, seed=seed,
            whole_copies=imbalance.whole_copies, stop_word_noise=imbalance.stop_word_noise,
        )
        resized_texts, resized_labels, source = resized.texts, resized.labels, resized.source
        sizes = {"before": resized.sizes_before, "after": resized.sizes_after}
    num_pairs = num_pairs_for(len(resized_texts), len(set(resized_labels)), cl.pair_multiplier)
    # Drawing nearly every distinct pair is slow and adds nothing: tiny data gets at most half of them.
    ceiling = available_pairs(resized_labels, source, cl.balance_scores) // 2
    if num_pairs > ceiling:
        logger.warning("Only %d distinct pairs exist in %d examples; using %d rather than %d.",
                       2 * ceiling, len(resized_texts), max(ceiling, 1), num_pairs)
        num_pairs = max(ceiling, 1)
    pairs = build_pairs(resized_labels, num_pairs, seed=seed, groups=source, balance_scores=cl.balance_scores)
    dataset = Dataset.from_dict({
        "sentence1": [resized_texts[i] for i, _, _ in pairs],
        "sentence2": [resized_texts[j] for _, j, _ in pairs],
        "score": [float(score) for _, _, score in pairs],
    })
    info = {"resized_examples": len(resized_texts), "num_pairs": len(pairs), "class_sizes": sizes,
            "positive_pairs": sum(1 for _, _, s in pairs if s == 1.0)}
    return dataset, info


def train_dae(body: SentenceTransformer, texts: Sequence[str], config: DAEConfig, *, seed: int = 42,
              output_dir: str | None = None, logging_steps: int = 10, device: str | None = None) -> dict[str, Any]:
    """Phase 1: TSDAE on ``texts`` (labels unused)."""
    dataset = dae_dataset(texts, config.deletion_ratio, config.num_train_epochs, seed)
    args = training_arguments(config, output_dir=output_dir, seed=seed, logging_steps=logging_steps, device=device)
    return train(body, dataset, TiedDenoisingAutoEncoderLoss(body), args) | {"examples": len(dataset)}


def train_cl(body: SentenceTransformer, texts: Sequence[str], labels: Sequence[int], config: CLConfig,
             imbalance: ImbalanceConfig | None = None, *, seed: int = 42, output_dir: str | None = None,
             logging_steps: int = 10, device: str | None = None) -> dict[str, Any]:
    """Phase 2: one epoch of the Siamese cosine-similarity loss over the pairs of the resized data."""
    dataset, info = pair_dataset(texts, labels, imbalance, config, seed)
    args = training_arguments(config, output_dir=output_dir, seed=seed, logging_steps=logging_steps, device=device)
    return train(body, dataset, CosineSimilarityLoss(body), args) | info


def joint_dataset(texts: Sequence[str], labels: Sequence[int], dae: DAEConfig, cl: CLConfig,
                  imbalance: ImbalanceConfig | None, seed: int) -> tuple[Dataset, dict[str, Any]]:
    """One row per Joint step input: a DAE example (noisy, text) beside a pair (sentence1, sentence2, score).

    The pairs are cycled when the DAE rows outnumber them; when the pairs are more, the texts are repeated with
    fresh noise (never the same noisy copy twice)."""
    pairs, info = pair_dataset(texts, labels, imbalance, cl, seed)
    repetitions = max(dae.num_train_epochs, math.ceil(len(pairs) / max(len(texts), 1)))
    noisy = dae_dataset(texts, dae.deletion_ratio, repetitions, seed)
    rows = max(len(noisy), len(pairs))
    take = lambda ds: list(itertools.islice(itertools.cycle(range(len(ds))), rows))  # noqa: E731
    noisy, pairs = noisy.select(take(noisy)), pairs.select(take(pairs))
    dataset = Dataset.from_dict({
        "noisy": noisy["noisy"], "text": noisy["text"],
        "sentence1": pairs["sentence1"], "sentence2": pairs["sentence2"], "score": pairs["score"],
    })
    return dataset, info | {"examples": rows}


def train_joint(body: SentenceTransformer, texts: Sequence[str], labels: Sequence[int], dae: DAEConfig,
                cl: CLConfig, imbalance: ImbalanceConfig | None = None, *, seed: int = 42,
                output_dir: str | None = None, logging_steps: int = 10, device: str | None = None) -> dict[str, Any]:
    """Joint: every step takes a DAE batch and a pair batch, sums the two losses, makes one optimizer step.

    The CL settings (learning rate, batch size) drive the shared optimizer."""
    dataset, info = joint_dataset(texts, labels, dae, cl, imbalance, seed)
    args = training_arguments(cl, output_dir=output_dir, seed=seed, logging_steps=logging_steps, device=device)
    return train(body, dataset, JointLoss(body), args) | info
