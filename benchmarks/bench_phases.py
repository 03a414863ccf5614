"""Examples per second of each phase through threephase, against a bare PyTorch loop doing the same work.

Usage::

    python benchmarks/bench_phases.py --quick          # under 3 minutes on 2 CPU cores
    python benchmarks/bench_phases.py                  # larger sizes, and the scaling figures
    python benchmarks/bench_phases.py --device cuda    # on a GPU: the paper preset's length and batch for snips2

For phase 1 / DAE, phase 2 / CL, phase 3 / FT (body training, and frozen) and ``predict``, the bare loop runs on the
same model, batch size, maximum length and texts: it tokenizes each batch, runs the same loss module forward, calls
backward and makes an AdamW step, with no trainer, no callbacks and no logging. With a frozen body both sides encode
the training and validation texts once and train the head on the vectors. ``ratio`` = our examples per second
/ the bare loop's; the target is at least 0.9 in every phase. Our time includes everything a call of the library
costs (building the noisy texts or the pairs, the trainer's set-up, phase 3's validation after each epoch).
Each measurement takes the best of ``--repeats`` runs on a fresh body. The JSON goes to ``--out``.

The scaling part (not with ``--quick``) times :func:`threephase.pairs.build_pairs` at 10k, 100k and 1M pairs and
phase 2 at two training-set sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

from threephase import CLConfig, DAEConfig, FTConfig, load_body, load_data, train_cl, train_dae, train_ft
from threephase.classifier import ClassificationLoss, MLPHead, ThreePhaseClassifier
from threephase.pairs import build_pairs
from threephase.phases import TiedDenoisingAutoEncoderLoss, dae_dataset, pair_dataset
from threephase.presets import paper_hyperparameters
from threephase.records import library_versions, write_json

TARGET_RATIO = 0.9


def fresh_body(args):
    return load_body(args.model, max_seq_length=args.max_seq_length, device=args.device)


def bare_loop(body, make_loss, columns: list[list[str]], labels: torch.Tensor | None, batch_size: int,
              epochs: int = 1) -> float:
    """Seconds for the plainest training loop over ``columns``: build the loss module (phase 1's holds the TSDAE
    decoder), then tokenize, forward, backward and take an AdamW step per batch."""
    synchronize(body.device)
    start = time.perf_counter()
    loss = make_loss()
    parameters = list({id(p): p for p in loss.parameters() if p.requires_grad}.values())
    optimizer = torch.optim.AdamW(parameters, lr=1e-5)
    body.train()
    for _ in range(epochs):
        for first in range(0, len(columns[0]), batch_size):
            features = [to_device(body.preprocess(column[first:first + batch_size]), body.device) for column in columns]
            batch_labels = None if labels is None else labels[first:first + batch_size].to(body.device)
            value = loss(features, batch_labels)
            if isinstance(value, dict):
                value = sum(value.values())
            value.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    synchronize(body.device)
    return time.perf_counter() - start


def to_device(features: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def best_of(repeats: int, measure) -> float:
    return min(measure() for _ in range(repeats))


def measure_phases(args, data) -> dict:
    texts, labels = data["train"]["text"], data["train"]["label"]
    batch = args.batch_size
    common = {"seed": 0, "device": args.device, "logging_steps": 10}
    dae = DAEConfig(num_train_epochs=1, per_device_train_batch_size=batch)
    cl = CLConfig(pair_multiplier=args.pair_multiplier, per_device_train_batch_size=batch)
    ft = FTConfig(num_train_epochs=args.ft_epochs, min_epochs=args.ft_epochs, patience=args.ft_epochs,
                  per_device_train_batch_size=batch, per_device_eval_batch_size=64)
    results = {}

    noisy = dae_dataset(texts, dae.deletion_ratio, 1, 0)
    results["dae"] = (len(noisy),
                      best_of(args.repeats, lambda: timed(lambda: train_dae(fresh_body(args), texts, dae, **common))),
                      best_of(args.repeats, lambda: bare_dae(args, noisy)))

    pairs, _ = pair_dataset(texts, labels, None, cl, 0)
    results["cl"] = (len(pairs),
                     best_of(args.repeats, lambda: timed(lambda: train_cl(fresh_body(args), texts, labels, cl,
                                                                          **common))),
                     best_of(args.repeats, lambda: bare_cl(args, pairs)))

    examples = len(texts) * args.ft_epochs
    results["ft"] = (examples,
                     best_of(args.repeats, lambda: timed(lambda: train_ft(fresh_body(args), data["train"],
                                                                          data["validation"], ft, **common))),
                     best_of(args.repeats, lambda: bare_ft(args, data, ft)))
    frozen = dataclasses.replace(ft, freeze_body=True)
    results["ft_frozen"] = (examples,
                            best_of(args.repeats, lambda: timed(lambda: train_ft(
                                fresh_body(args), data["train"], data["validation"], frozen, **common))),
                            best_of(args.repeats, lambda: bare_frozen_ft(args, data, frozen)))

    test_texts = data["test"]["text"]
    body = fresh_body(args)
    head = MLPHead(body.get_embedding_dimension(), len(data["train"].features["label"].names))
    classifier = ThreePhaseClassifier(body, head, data["train"].features["label"].names)
    results["predict"] = (len(test_texts),
                          best_of(args.repeats, lambda: timed(lambda: classifier.predict(test_texts, batch_size=64))),
                          best_of(args.repeats, lambda: bare_predict(classifier, test_texts, 64)))
    return {name: {"examples": n, "ours_seconds": round(ours, 3), "bare_seconds": round(bare, 3),
                   "ours_examples_per_s": round(n / ours, 1), "bare_examples_per_s": round(n / bare, 1),
                   "ratio": round(bare / ours, 3)}
            for name, (n, ours, bare) in results.items()}


def bare_dae(args, noisy) -> float:
    body = fresh_body(args)
    return bare_loop(body, lambda: TiedDenoisingAutoEncoderLoss(body), [noisy["noisy"], noisy["text"]], None,
                     args.batch_size)


def bare_cl(args, pairs) -> float:
    body = fresh_body(args)
    return bare_loop(body, lambda: CosineSimilarityLoss(body), [pairs["sentence1"], pairs["sentence2"]],
                     torch.tensor(pairs["score"]), args.batch_size)


def bare_ft(args, data, ft: FTConfig) -> float:
    body = fresh_body(args)
    torch.manual_seed(0)
    head = MLPHead(body.get_embedding_dimension(), len(data["train"].features["label"].names)).to(body.device)
    return bare_loop(body, lambda: ClassificationLoss(body, head), [data["train"]["text"]],
                     torch.tensor(data["train"]["label"]), args.batch_size, epochs=ft.num_train_epochs)


def bare_frozen_ft(args, data, ft: FTConfig) -> float:
    body = fresh_body(args)
    head = MLPHead(body.get_embedding_dimension(), len(data["train"].features["label"].names)).to(body.device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
    labels = torch.tensor(data["train"]["label"], device=body.device)
    start = time.perf_counter()
    vectors = body.encode(data["train"]["text"], batch_size=64, convert_to_tensor=True).clone()
    body.encode(data["validation"]["text"], batch_size=64, convert_to_tensor=True)  # early stopping scores these
    for _ in range(ft.num_train_epochs):
        for first in range(0, len(labels), args.batch_size):
            loss = torch.nn.functional.cross_entropy(head(vectors[first:first + args.batch_size]),
                                                     labels[first:first + args.batch_size])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    synchronize(body.device)
    return time.perf_counter() - start


def bare_predict(classifier: ThreePhaseClassifier, texts: list[str], batch_size: int) -> float:
    body, head = classifier.body, classifier.head
    body.eval()
    head.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(texts), batch_size):
            features = to_device(body.preprocess(texts[first:first + batch_size]), body.device)
            head(body(features)["sentence_embedding"]).argmax(dim=-1).tolist()
    synchronize(body.device)
    return time.perf_counter() - start


def measure_scaling(args) -> dict:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 200_000).tolist()
    pairs = [{"pairs": n, "seconds": round(timed(lambda n=n: build_pairs(labels, n, seed=0)), 3)}
             for n in (10_000, 100_000, 1_000_000)]
    phase2 = []
    for per_class in (args.train_per_class, 2 * args.train_per_class):
        data = load_data(dataset=args.dataset, train_per_class=per_class, validation_per_class=4, test_per_class=2)
        cl = CLConfig(pair_multiplier=args.pair_multiplier, per_device_train_batch_size=args.batch_size)
        report = {}
        seconds = timed(lambda data=data, cl=cl: report.update(train_cl(
            fresh_body(args), data["train"]["text"], data["train"]["label"], cl, seed=0, device=args.device)))
        phase2.append({"train_examples": len(data["train"]), "pairs": report["num_pairs"],
                       "seconds": round(seconds, 2), "pairs_per_s": round(report["num_pairs"] / seconds, 1)})
    return {"build_pairs": pairs, "phase2": phase2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no scaling part: under 3 min on 2 cores")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="snips2")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--repeats", type=int, default=None, help="best of this many runs (default 2)")
    parser.add_argument("--out", default="benchmarks/results/phases.json")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    if gpu:  # the paper preset's length and batch for the dataset
        paper = paper_hyperparameters(args.dataset, "sentence-transformers/all-MiniLM-L12-v2")
        args.max_seq_length, args.batch_size = paper["max_seq_length"] or 128, paper["dae"]["per_device_train_batch_size"]
    else:
        args.max_seq_length, args.batch_size = 64, 16
    args.train_per_class = (16 if args.quick else 32) * (8 if gpu else 1)
    args.pair_multiplier, args.ft_epochs = 1, 2
    args.repeats = args.repeats or 2

    data = load_data(dataset=args.dataset, train_per_class=args.train_per_class, validation_per_class=8,
                     test_per_class=4 * args.train_per_class)
    fresh_body(args).encode(["warm up the threads"])
    start = time.perf_counter()
    phases = measure_phases(args, data)
    result = {
        "benchmark": "examples per second: threephase vs a bare PyTorch loop on the same work",
        "quick": args.quick, "device": args.device, "dataset": args.dataset, "model": args.model,
        "max_seq_length": args.max_seq_length, "batch_size": args.batch_size,
        "train_examples": len(data["train"]), "validation_examples": len(data["validation"]),
        "test_examples": len(data["test"]), "ft_epochs": args.ft_epochs, "repeats": args.repeats,
        "phases": phases, "target_ratio": TARGET_RATIO,
        "meets_target": all(p["ratio"] >= TARGET_RATIO for p in phases.values()),
    }
    if not args.quick:
        result["scaling"] = measure_scaling(args)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["machine"] = {"platform": platform.platform(), "torch_threads": torch.get_num_threads(),
                         "gpu": torch.cuda.get_device_name(0) if gpu else None}
    result["versions"] = library_versions()
    print(f"{'phase':<10} {'examples':>8} {'ours ex/s':>10} {'bare ex/s':>10} {'ratio':>6}")
    for name, p in phases.items():
        print(f"{name:<10} {p['examples']:>8} {p['ours_examples_per_s']:>10.1f} {p['bare_examples_per_s']:>10.1f} "
              f"{p['ratio']:>6.3f}")
    write_json(Path(args.out), result)
    print(json.dumps({"out": args.out, "meets_target": result["meets_target"], "seconds": result["seconds"]}))


if __name__ == "__main__":
    main()
