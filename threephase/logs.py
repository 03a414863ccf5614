"""How every entry point logs: the command line, the reproduction's worker processes and the cluster jobs.

It lives below the command line so that the grid machinery (:mod:`threephase.grid`: its cells' workers, its jobs)
imports it downwards, never from :mod:`threephase.cli`.
"""

from __future__ import annotations

import logging


def quiet_logging() -> None:
    """threephase's messages at INFO, the libraries' at WARNING (also in the reproduction's worker processes)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "huggingface_hub", "sentence_transformers", "transformers", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
