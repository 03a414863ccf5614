"""How every entry point logs: the command line, the reproduction's worker processes and the cluster jobs.

It lives below the command line so that the grid machinery (:mod:`threephase.grid`: its cells' workers, its jobs)
imports it downwards, never from :mod:`threephase.cli`.
"""

from __future__ import annotations

import logging
import os


def quiet_logging() -> None:
    """threephase's messages at INFO, the libraries' at WARNING (also in the reproduction's worker processes)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "huggingface_hub", "sentence_transformers", "transformers", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def progress_bars_off() -> bool:
    """True when tqdm's own setting ``$TQDM_DISABLE`` turns progress bars off (the book build sets it for its
    kernels: a bar saved in a page is frozen where the run ended, and a notebook's bar is a widget whose script would
    come from a CDN). tqdm's notebook bar and the trainer's bar do not read it, so every bar of threephase passes it
    on as ``disable=``."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false")
