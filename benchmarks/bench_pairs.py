"""Time and memory of :func:`threephase.pairs.build_pairs` on a large request.

Usage::

    python benchmarks/bench_pairs.py [--num-pairs 1000000 --num-labels 120000 --num-classes 4
                                      --out benchmarks/results/pairs.json]

Peak memory is reported two ways: the tracemalloc peak (Python allocations, numpy's included) and the growth of
the process's maximum resident set size (ru_maxrss), which also sees allocations tracemalloc misses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from threephase.pairs import build_pairs, pair_statistics

TARGET_SECONDS = 5.0
TARGET_MB = 300.0


def _maxrss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux but in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _write_json_atomically(data: dict, path: Path) -> None:
    # A reader never sees a half-written file: write beside it, then rename over it.
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o644)  # mkstemp creates the file private to its owner
        with os.fdopen(handle, "w") as file:
            json.dump(data, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def run(num_pairs: int, num_labels: int, num_classes: int, seed: int = 0) -> dict:
    """Build the pairs once and return the figures."""
    labels = np.random.default_rng(seed).integers(0, num_classes, num_labels).tolist()
    rss_before = _maxrss_mb()
    start = time.perf_counter()
    pairs = build_pairs(labels, num_pairs, seed=seed)
    seconds = time.perf_counter() - start
    maxrss_growth = _maxrss_mb() - rss_before
    positive_fraction = pair_statistics(pairs)["positive_fraction"]
    del pairs
    # A second run for tracemalloc: its bookkeeping slows allocation down and would inflate ru_maxrss.
    tracemalloc.start()
    build_pairs(labels, num_pairs, seed=seed)
    tracemalloc_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {
        "num_pairs": num_pairs,
        "num_labels": num_labels,
        "num_classes": num_classes,
        "seconds": round(seconds, 3),
        "tracemalloc_peak_mb": round(tracemalloc_peak, 1),
        "maxrss_growth_mb": round(maxrss_growth, 1),
        "positive_fraction": round(positive_fraction, 4),
        "target": {"seconds": TARGET_SECONDS, "mb": TARGET_MB},
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-pairs", type=int, default=1_000_000)
    parser.add_argument("--num-labels", type=int, default=120_000)
    parser.add_argument("--num-classes", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pairs.json"))
    args = parser.parse_args(argv)

    figures = run(args.num_pairs, args.num_labels, args.num_classes)
    peak_mb = max(figures["tracemalloc_peak_mb"], figures["maxrss_growth_mb"])
    met = figures["seconds"] <= TARGET_SECONDS and peak_mb <= TARGET_MB
    figures["meets_target"] = met
    print(f"build_pairs: {args.num_pairs:,} pairs over {args.num_labels:,} labels ({args.num_classes} classes)")
    print(f"  time: {figures['seconds']:.2f} s (target <= {TARGET_SECONDS:g} s)")
    print(f"  peak memory: tracemalloc {figures['tracemalloc_peak_mb']:.1f} MB, "
          f"ru_maxrss growth {figures['maxrss_growth_mb']:.1f} MB (target <= {TARGET_MB:g} MB)")
    print(f"  {'meets' if met else 'MISSES'} the target; figures written to {args.out}")
    _write_json_atomically(figures, args.out)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
