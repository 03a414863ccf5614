"""Does bf16 cost accuracy? The same runs in fp32 and in bf16, paired on seed, with a 95% interval of the difference.

Usage::

    python benchmarks/precision_check.py                          # quickstart and long tail, seeds 0-4
    python benchmarks/precision_check.py --device cuda --seeds 5  # on a GPU (scripts/gpu_record.sh calls this)

Each setting runs the ``cpu`` preset on snips2 (``quickstart``: the README's three-phase run; ``long-tail``: ft on a
long-tailed split of 86 texts at a ratio of 10, the experiment's tail) once per seed in ``precision=fp32`` and once in
``precision=bf16``; everything else is equal. The JSON (``--out``) holds every run's scores and, per setting and
metric, the mean of bf16 − fp32 in points with its Student-t 95% interval over seeds.

bf16 pays only where the hardware computes it (AMX or AVX512-BF16 CPUs, recent GPUs): elsewhere torch emulates it,
many times slower than fp32, so the script refuses to run there unless ``--force``. Run folders go under
``--runs-dir`` and a rerun resumes them.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

from threephase import preset_config, run
from threephase.config import apply_overrides
from threephase.precision import cpu_has_fast_bf16, device_type
from threephase.records import library_versions, write_json
from threephase.stats import mean_interval

SETTINGS = {
    "quickstart": ("three-phase", {}),
    "long-tail": ("ft", {"data.imbalance_factor": 10, "data.max_train_samples": 86, "data.min_per_class": 4,
                         "max_seq_length": 48, "data.max_test_samples": 300, "data.max_validation_samples": 48}),
}
METRICS = ("accuracy", "macro_f1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated: {', '.join(SETTINGS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--data-dir", default=None, help="the offline data (default: $THREEPHASE_DATA_DIR or the Hub)")
    parser.add_argument("--model", default=None, help="the body (default: the cpu preset's all-MiniLM-L6-v2)")
    parser.add_argument("--runs-dir", default="reproductions/precision-check")
    parser.add_argument("--out", default="benchmarks/results/precision_check.json")
    parser.add_argument("--force", action="store_true", help="run bf16 even where the CPU emulates it (slow)")
    args = parser.parse_args()
    if device_type(args.device) == "cpu" and not cpu_has_fast_bf16() and not args.force:
        print("precision_check: this CPU has neither AMX nor AVX512-BF16, so bf16 is emulated (a training step took "
              "14x longer than fp32 on an AVX2 AMD EPYC). Run it on a CPU with AMX or on a GPU, or pass --force.",
              file=sys.stderr)
        return 2
    runs = []
    for name in args.settings.split(","):
        if name not in SETTINGS:
            parser.error(f"unknown setting {name!r}; choose from {', '.join(SETTINGS)}")
        variant, overrides = SETTINGS[name]
        for seed in range(args.seeds):
            for precision in ("fp32", "bf16"):
                config = preset_config("cpu", "snips2", args.model, variant=variant, seed=seed, precision=precision,
                                       device=args.device,
                                       output_dir=str(Path(args.runs_dir) / f"{name}-{precision}-s{seed}"))
                config = apply_overrides(config, {**overrides, **({"data.data_dir": args.data_dir} if args.data_dir
                                                                   else {})})
                metrics = run(config, resume=True).metrics
                runs.append({"setting": name, "seed": seed, "precision": metrics.get("precision", precision),
                             **{m: metrics[m] for m in METRICS}, "wall_time_s": metrics.get("wall_time_s")})
    summary = {}
    for name in dict.fromkeys(r["setting"] for r in runs):
        by = {(r["seed"], r["precision"]): r for r in runs if r["setting"] == name}
        seeds = sorted({seed for seed, _ in by})
        summary[name] = {}
        for metric in METRICS:
            diffs = [100 * (by[s, "bf16"][metric] - by[s, "fp32"][metric]) for s in seeds]
            mean, low, high = mean_interval(diffs)
            summary[name][metric] = {"bf16_minus_fp32_points": round(mean, 3), "ci95": [round(low, 3), round(high, 3)],
                                     "seeds": len(seeds), "differences": [round(d, 3) for d in diffs]}
        times = {p: sum(by[s, p]["wall_time_s"] or 0 for s in seeds) for p in ("fp32", "bf16")}
        summary[name]["fp32_over_bf16_time"] = round(times["fp32"] / times["bf16"], 3) if times["bf16"] else None
    write_json(Path(args.out), {
        "check": "bf16 - fp32, paired on seed, cpu preset on snips2", "settings": summary, "runs": runs,
        "device": device_type(args.device), "platform": platform.platform(), "cpu_fast_bf16": cpu_has_fast_bf16(),
        "versions": library_versions()})
    for name, values in summary.items():
        for metric in METRICS:
            v = values[metric]
            print(f"{name:<11} {metric:<9} bf16 - fp32 = {v['bf16_minus_fp32_points']:+.2f} points, 95% CI "
                  f"[{v['ci95'][0]:+.2f}, {v['ci95'][1]:+.2f}] over {v['seeds']} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
