"""Numeric precision: which floating-point format the forward and backward passes compute in.

``precision`` (a top-level setting: ``--set precision=bf16``) is one of ``auto`` (the default), ``fp32``, ``bf16``
and ``fp16``. Weights always stay in fp32 and are saved in fp32; ``bf16`` and ``fp16`` run the passes under
``torch.autocast`` (the trainer's ``bf16`` / ``fp16`` arguments in the phases that train through it).

``auto`` picks bf16 where it is fast: on a CUDA GPU that supports it, and on a CPU with AMX or AVX512-BF16 (there, a
training step of all-MiniLM-L6-v2 at batch 16 took 1.3-1.6x less time). Elsewhere it picks fp32: on a CPU without
them bf16 is emulated, and a training step took 14x *more* time on an AVX2-only AMD EPYC (``benchmarks/results/``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from typing import Any

from .errors import ThreePhaseError

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ThreePhaseError(
            f"Unknown precision {precision!r}. Choose one of: {', '.join(PRECISIONS)} (auto: bf16 where the GPU or CPU "
            "computes it fast, else fp32)."
        )


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products in hardware (AMX tiles or AVX512-BF16), as torch detects it."""
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def device_type(device: Any) -> str:
    """``cuda``, ``cpu`` or ``mps`` for a device name or ``torch.device`` (None: the trainer's default)."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device).type


def resolve_precision(precision: str, device: Any = None) -> str:
    """The precision ``precision`` means on ``device``: ``auto`` becomes ``bf16`` or ``fp32``; an explicit choice
    that the device cannot honour is refused with the alternative."""
    import torch

    check_precision(precision)
    kind = device_type(device)
    if precision == "auto":
        if kind == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if kind == "cpu" and cpu_has_fast_bf16() else "fp32"
    if precision == "fp16" and kind != "cuda":
        raise ThreePhaseError(
            f"precision fp16 needs a CUDA GPU (this run is on {kind}): use bf16 on a CPU with AMX or AVX512-BF16, "
            "fp32, or auto."
        )
    if precision == "bf16" and kind == "cpu" and not cpu_has_fast_bf16():
        _warn_slow_bf16()
    return precision


@functools.lru_cache(maxsize=None)
def _warn_slow_bf16() -> None:  # once per process, not once per phase
    logger.warning("precision bf16 on a CPU without AMX or AVX512-BF16: torch emulates it, and training is many "
                   "times slower than in fp32. precision=auto picks fp32 here.")


def trainer_arguments(resolved: str) -> dict[str, bool]:
    """The TrainingArguments flags of a resolved precision (the trainer then trains under autocast)."""
    return {"bf16": True} if resolved == "bf16" else {"fp16": True} if resolved == "fp16" else {}


@contextlib.contextmanager
def autocast(resolved: str, device: Any) -> Iterator[None]:
    """Run the block under ``torch.autocast`` in a resolved ``bf16`` / ``fp16``; as it is in ``fp32``."""
    import torch

    if resolved not in _DTYPES:
        yield
        return
    with torch.autocast(device_type(device), dtype=getattr(torch, _DTYPES[resolved])):
        yield
