"""Phase 1 (DAE), phase 2 (CL) and Joint: training data for each, and one function per phase.

Each function trains the body it is given in place and returns a report (loss history, steps, wall time).
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import random
from collections.abc import Sequence
from typing import Any

from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss, DenoisingAutoEncoderLoss
from sentence_transformers.sentence_transformer.losses.denoising_auto_encoder import _tie_encoder_decoder_weights
from sentence_transformers.sentence_transformer.modules import Transformer
from torch import nn
from transformers import AutoModelForCausalLM
from transformers.utils import logging as hf_logging

from .config import CLConfig, DAEConfig, ImbalanceConfig
from .errors import ThreePhaseError
from .imbalance import resize_dataset
from .noise import delete_words
from .pairs import available_pairs, build_pairs, num_pairs_for
from .training import train, training_arguments

logger = logging.getLogger(__name__)


class TiedDenoisingAutoEncoderLoss(DenoisingAutoEncoderLoss):
    """TSDAE with the decoder tied to the body as it is in memory, trainable through a DDP-wrapped body.

    Upstream builds the decoder from the checkpoint named in the body's config and then points the encoder at the
    decoder's weights, so a body trained or edited in memory would restart from the weights on disk. Here the decoder
    is loaded from that checkpoint too (for its pre-trained LM head), then takes the body's current weights before the
    two are tied.
    The body is registered as ``model`` (and only there), so that the trainer swaps the DDP-wrapped body in; the
    upstream ``forward`` reads it as ``encoder``.
    """

    def __init__(self, body: SentenceTransformer):
        nn.Module.__init__(self)
        if not isinstance(body[0], Transformer):
            raise ThreePhaseError("Phase 1 / DAE needs a Transformer-based body (a decoder is tied to its encoder).")
        self.model = body
        self.tokenizer_encoder = self.tokenizer_decoder = body.tokenizer
        self.need_retokenization = False
        encoder = body.transformers_model
        config = copy.deepcopy(encoder.config)
        config.is_decoder, config.add_cross_attention = True, True
        try:
            self.decoder = _decoder(config, encoder)
        except ValueError as err:
            raise ThreePhaseError(
                f"Phase 1 / DAE cannot build a decoder for a {type(encoder).__name__} body ({err}): TSDAE needs an "
                "architecture with a causal-LM head (BERT, RoBERTa, MiniLM...). Use a variant without phase 1."
            ) from None
        self.decoder.eval()  # as upstream's from_pretrained leaves it: no dropout inside the decoder
        decoder_base = self.decoder._modules[self.decoder.base_model_prefix]
        missing = decoder_base.load_state_dict(encoder.state_dict(), strict=False).missing_keys
        if any("crossattention" not in key for key in missing):
            logger.warning("The decoder did not take these encoder weights: %s", [k for k in missing
                                                                                   if "crossattention" not in k])
        _tie_encoder_decoder_weights(encoder, decoder_base)

    @property
    def encoder(self) -> nn.Module:
        return self.model


def _decoder(config, encoder: nn.Module) -> nn.Module:
    """The causal-LM decoder, with the LM head of the checkpoint the body was loaded from when it has one.

    A pre-trained LM head (BERT's ``cls.predictions``, RoBERTa's ``lm_head``) is loaded as upstream's
    DenoisingAutoEncoderLoss loads it; the caller then copies the body's in-memory weights into the rest. A
    checkpoint without a head (a sentence-transformers body such as all-MiniLM) leaves it randomly initialised."""
    source = encoder.config._name_or_path
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # transformers' table of the missing keys: what matters is said below
    try:
        decoder, info = AutoModelForCausalLM.from_pretrained(
            source, config=config, use_safetensors=True, trust_remote_code=False, dtype=encoder.dtype,
            output_loading_info=True)
    except OSError as err:  # no such folder or Hub id, no safetensors weights, or the Hub is out of reach
        logger.warning("Phase 1 / DAE: the decoder's LM head starts random: could not load it from %r (%s).",
                       source, err)
        return AutoModelForCausalLM.from_config(config)
    finally:
        hf_logging.set_verbosity(verbosity)
    base = decoder.base_model_prefix
    head = [key for key in info["missing_keys"] if not key.startswith(f"{base}.") and "crossattention" not in key]
    if head:
        logger.info("Phase 1 / DAE: %r has no LM head (%s), so the decoder's head starts random.", source,
                    ", ".join(sorted(head)[:3]) + (", ..." if len(head) > 3 else ""))
    return decoder

    def get_config_dict(self) -> dict[str, Any]:
        return {"tie_encoder_decoder": True}


class JointLoss(nn.Module):
    """L_DAE × dae_weight + L_CL on one body (eq. 10, where dae_weight = 1): each row carries a DAE example and a pair.

    The two parts are returned apart, so the trainer logs each and optimises their sum."""

    def __init__(self, body: SentenceTransformer, dae_weight: float = 1.0):
        super().__init__()
        self.model = body
        self.dae = TiedDenoisingAutoEncoderLoss(body)
        self.cl = CosineSimilarityLoss(body)
        self.dae_weight = dae_weight

    def forward(self, sentence_features, labels):
        # No swap of the body here: the trainer replaces every `model` child, so both branches see the DDP wrapper.
        noisy, clean, first, second = sentence_features
        return {"loss_dae": self.dae_weight * self.dae([noisy, clean], None),
                "loss_cl": self.cl([first, second], labels)}


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
    num_pairs = cl.num_pairs or num_pairs_for(len(resized_texts), len(set(resized_labels)), cl.pair_multiplier)
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
              output_dir: str | None = None, logging_steps: int = 10, device: str | None = None,
              save_steps: int = 0, resume: bool = False, precision: str = "auto") -> dict[str, Any]:
    """Phase 1: TSDAE on ``texts`` (labels unused), starting from the body's weights in memory."""
    dataset = dae_dataset(texts, config.deletion_ratio, config.num_train_epochs, seed)
    args = training_arguments(config, output_dir=output_dir, seed=seed, logging_steps=logging_steps, device=device,
                              save_steps=save_steps, precision=precision)
    report = train(body, dataset, TiedDenoisingAutoEncoderLoss(body), args, resume=resume, phase="dae")
    return report | {"examples": len(dataset)}


def train_cl(body: SentenceTransformer, texts: Sequence[str], labels: Sequence[int], config: CLConfig,
             imbalance: ImbalanceConfig | None = None, *, seed: int = 42, output_dir: str | None = None,
             logging_steps: int = 10, device: str | None = None, save_steps: int = 0,
             resume: bool = False, precision: str = "auto") -> dict[str, Any]:
    """Phase 2: one epoch of the Siamese cosine-similarity loss over the pairs of the resized data."""
    dataset, info = pair_dataset(texts, labels, imbalance, config, seed)
    args = training_arguments(config, output_dir=output_dir, seed=seed, logging_steps=logging_steps, device=device,
                              save_steps=save_steps, precision=precision)
    return train(body, dataset, CosineSimilarityLoss(body), args, resume=resume, phase="cl") | info


def joint_dataset(texts: Sequence[str], labels: Sequence[int], dae: DAEConfig, cl: CLConfig,
                  imbalance: ImbalanceConfig | None, seed: int,
                  dae_texts: Sequence[str] | None = None) -> tuple[Dataset, dict[str, Any]]:
    """One row per Joint step input: a DAE example (noisy, text) beside a pair (sentence1, sentence2, score).

    The DAE examples come from ``dae_texts`` (default: the labelled ``texts``). The pairs are cycled when the DAE
    rows outnumber them; when the pairs are more, the texts are repeated with fresh noise (never the same noisy copy
    twice)."""
    dae_texts = list(texts) if dae_texts is None else list(dae_texts)
    pairs, info = pair_dataset(texts, labels, imbalance, cl, seed)
    repetitions = max(dae.num_train_epochs, math.ceil(len(pairs) / max(len(dae_texts), 1)))
    noisy = dae_dataset(dae_texts, dae.deletion_ratio, repetitions, seed)
    rows = max(len(noisy), len(pairs))
    take = lambda ds: list(itertools.islice(itertools.cycle(range(len(ds))), rows))  # noqa: E731
    noisy, pairs = noisy.select(take(noisy)), pairs.select(take(pairs))
    dataset = Dataset.from_dict({
        "noisy": noisy["noisy"], "text": noisy["text"],
        "sentence1": pairs["sentence1"], "sentence2": pairs["sentence2"], "score": pairs["score"],
    })
    return dataset, info | {"examples": rows}


def train_joint(body: SentenceTransformer, texts: Sequence[str], labels: Sequence[int], dae: DAEConfig,
                cl: CLConfig, imbalance: ImbalanceConfig | None = None, *, dae_weight: float = 1.0, seed: int = 42,
                output_dir: str | None = None, logging_steps: int = 10, device: str | None = None,
                save_steps: int = 0, resume: bool = False, dae_texts: Sequence[str] | None = None,
                precision: str = "auto") -> dict[str, Any]:
    """Joint: every step takes a DAE batch and a pair batch, sums ``dae_weight`` × L_DAE and L_CL, and makes one
    optimizer step.

    The CL settings (learning rate, batch size, ``training_args``) drive the shared optimizer."""
    dataset, info = joint_dataset(texts, labels, dae, cl, imbalance, seed, dae_texts)
    args = training_arguments(cl, output_dir=output_dir, seed=seed, logging_steps=logging_steps, device=device,
                              save_steps=save_steps, precision=precision)
    report = train(body, dataset, JointLoss(body, dae_weight), args, resume=resume, phase="joint")
    return report | info | {"dae_weight": dae_weight}
