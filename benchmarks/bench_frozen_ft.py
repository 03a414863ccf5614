"""Phase 3 / FT with a frozen body against the same phase with the body training, on equal settings.

Usage::

    python benchmarks/bench_frozen_ft.py [--dataset snips2 --train-per-class 64 --epochs 5 --max-seq-length 64
                                          --out benchmarks/results/frozen_ft.json]

Both runs train the same head for the same number of epochs (early stopping off) on the same texts. A frozen body
encodes the training and validation texts once and trains the head on the stored vectors, so its time is about one
forward pass over the data plus the head's epochs. The target: the frozen run takes well under half the time.
Needs the offline data (``$THREEPHASE_DATA_DIR``) or the Hub, and the model (``HF_HUB_OFFLINE=1`` with the
``offline`` extra reads the packaged all-MiniLM-L6-v2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from threephase import FTConfig, load_body, load_data, train_ft
from threephase.records import library_versions, write_json

TARGET_RATIO = 0.5


def time_phase3(data, model: str, max_seq_length: int, config: FTConfig) -> dict:
    body = load_body(model, max_seq_length=max_seq_length, device="cpu")
    start = time.perf_counter()
    _, report = train_ft(body, data["train"], data["validation"], config, seed=0, device="cpu")
    seconds = time.perf_counter() - start
    best = report["epochs"][report["best_epoch"] - 1]
    return {"seconds": round(seconds, 2), "epochs": len(report["epochs"]), "steps": report["steps"],
            "best_validation_accuracy": best["validation_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="snips2")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--train-per-class", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/frozen_ft.json")
    args = parser.parse_args()

    data = load_data(dataset=args.dataset, train_per_class=args.train_per_class, validation_per_class=24,
                     test_per_class=2)
    settings = FTConfig(learning_rate=1e-4, head_learning_rate=2e-3, num_train_epochs=args.epochs,
                        min_epochs=args.epochs, patience=args.epochs, per_device_train_batch_size=16)
    unfrozen = time_phase3(data, args.model, args.max_seq_length, settings)
    frozen = time_phase3(data, args.model, args.max_seq_length, dataclasses.replace(settings, freeze_body=True))
    ratio = frozen["seconds"] / unfrozen["seconds"]
    result = {
        "benchmark": "phase 3 / FT, frozen body (encoded once) vs body training, equal settings",
        "dataset": args.dataset, "model": args.model, "train_examples": len(data["train"]),
        "validation_examples": len(data["validation"]), "epochs": args.epochs,
        "max_seq_length": args.max_seq_length, "batch_size": settings.per_device_train_batch_size,
        "unfrozen": unfrozen, "frozen": frozen, "time_ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO, "meets_target": ratio < TARGET_RATIO,
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "versions": library_versions(),
    }
    print(f"phase 3 on {len(data['train'])} texts, {args.epochs} epochs: body training {unfrozen['seconds']:.1f} s, "
          f"frozen body {frozen['seconds']:.1f} s, ratio {ratio:.3f} (target < {TARGET_RATIO})")
    write_json(Path(args.out), result)
    print(json.dumps({"out": args.out, "time_ratio": result["time_ratio"], "meets_target": result["meets_target"]}))


if __name__ == "__main__":
    main()
