"""When do the phases help? A CPU experiment, run as a fair fight, over the settings in which the paper says phases
1 and 2 should help.

``python -m threephase experiment --out reproductions/phases-help`` runs, for each *setting*
(:data:`threephase.grid.settings.SETTINGS`, which describes them), every variant that the setting can tell apart,
with the ``cpu`` preset at the sizes of :data:`SIZES`, over 5 seeds, through the reproduction's grid
(:func:`threephase.grid.reproduce.run_grid`). Then :mod:`threephase.grid.report` writes the tables: each variant's
accuracy and macro-F1 and their paired differences to ``ft`` (same data draw, same seed) with 95% intervals,
Holm-corrected, and the sentences the book quotes.

Every method trains on one data draw and selects on the same labelled examples (few-shot validation has as many
examples per class as training; ``logreg`` and ``setfit`` choose their C there), and every fine-tuned variant ends
with the same phase 3, the ``cpu`` preset's.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import apply_overrides, parse_set_options
from ..errors import ThreePhaseError
from ..imbalance import resized_sizes
from ..pairs import num_pairs_for
from ..presets import CPU_MODEL, preset_config
from .jobs import add_executor_options, executor_options, still_running
from .report import to_markdown, write_summary
from .reproduce import absolute_paths, check_grid, parse_seeds, report, run_grid, split_list
from .settings import DATASETS, SETTINGS

logger = logging.getLogger(__name__)

DRAW_KEYS = ("data.train_per_class", "data.max_train_samples", "data.max_unlabelled_samples", "data.min_per_class")

# The experiment's sizes atop the cpu preset: each run takes a minute or two on 2 CPU cores.
SIZES: dict[str, dict[str, Any]] = {
    # A few-shot split is one or two batches: phases 1 and 2 get their steps from repetitions (4 passes of phase 1,
    # 4x the cpu preset's pairs), so that no phase is a step or two of warm-up. Phase 3 is the cpu preset's, the
    # same recipe for every variant.
    "full": {"max_seq_length": 48, "logging_steps": 50, "data.max_validation_samples": 48,
             "data.max_test_samples": 300, "dae.num_train_epochs": 4, "cl.pair_multiplier": 4},
    # The smallest form, which CI runs: it proves the grid, the aggregation and the files, not any result.
    "smallest": {"max_seq_length": 24, "logging_steps": 50, "data.max_validation_samples": 16,
                 "data.max_test_samples": 32, "data.max_unlabelled_samples": 16, "data.max_train_samples": 24,
                 "data.train_per_class": 3, "data.min_per_class": 2, "dae.num_train_epochs": 1, "cl.pair_multiplier": 1,
                 "ft.num_train_epochs": 1, "ft.min_epochs": 1},
}


@dataclass
class Plan:
    """The cells of each setting and the overrides they share."""

    cells: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Per setting and dataset, overrides that depend on the data draw (an equal pair count).
    dataset_overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def groups(self, name: str):
        """(overrides, cells) of setting ``name``, one group per dataset: each dataset's own overrides added."""
        for dataset in dict.fromkeys(c["dataset"] for c in self.cells[name]):
            extra = self.dataset_overrides.get(name, {}).get(dataset, {})
            yield {**self.overrides[name], **extra}, [c for c in self.cells[name] if c["dataset"] == dataset]


def pair_count(dataset: str, model: str, variant: str, overrides: dict[str, Any]) -> int:
    """How many pairs ``variant`` draws in phase 2 on the data draw of ``overrides`` (its resize, then eq. 2's
    count), without training anything."""
    from ..data import class_sizes, load_data
    from ..pipeline import VARIANTS as PIPELINE_VARIANTS

    config = apply_overrides(preset_config("cpu", dataset, model, variant=variant), overrides)
    sizes = class_sizes(load_data(config.data)["train"])
    imbalance = PIPELINE_VARIANTS[variant].imbalance(config.imbalance)  # the resize run() applies
    if imbalance is not None:
        sizes = resized_sizes(sizes, imbalance.min_ratio, imbalance.max_ratio, imbalance.whole_copies)
    return num_pairs_for(sum(sizes.values()), len(sizes), config.cl.pair_multiplier)


def plan(settings=None, datasets=None, seeds: str | int = 5, size: str = "full", variants=None,
         model: str = CPU_MODEL, extra: dict[str, Any] | None = None) -> Plan:
    """The grid: for each setting, (dataset × its variants × seeds) cells and the overrides of that setting."""
    if size not in SIZES:
        raise ThreePhaseError(f"Unknown size {size!r}. Choose one of: {', '.join(SIZES)}.")
    result = Plan()
    for name in settings or SETTINGS:
        if name not in SETTINGS:
            raise ThreePhaseError(f"Unknown setting {name!r}. Choose one of: {', '.join(SETTINGS)}.")
        setting = SETTINGS[name]
        chosen = [v for v in setting.variants if variants is None or v in variants]
        if "setfit" in chosen:
            try:
                from ..baselines import require_extras  # on use: --help must not wait for the training stack

                require_extras("setfit")
            except ThreePhaseError as missing:
                logger.warning("%s: leaving out setfit. %s", name, missing)
                chosen.remove("setfit")
        if "ft" not in chosen:  # every difference is measured against ft
            chosen.append("ft")
        # In the full size the setting's own choices beat the size's budget; the smallest form caps everything. A
        # size's draw caps apply only where the setting draws that way (per class, or a proportional total).
        budget = {k: v for k, v in SIZES[size].items() if k not in DRAW_KEYS}
        draws = {k: v for k, v in SIZES[size].items() if k in DRAW_KEYS and k in setting.overrides}
        ordered = {**setting.overrides, **budget} if size == "smallest" else {**budget, **setting.overrides}
        result.overrides[name] = absolute_paths({**ordered, **draws, **(extra or {})})
        chosen_datasets = datasets or setting.datasets
        result.cells[name] = [{"dataset": d, "model": model, "variant": v, "seed": s, "preset": "cpu"}
                              for d in chosen_datasets for v in chosen for s in parse_seeds(seeds)]
        if setting.equal_pairs:
            result.dataset_overrides[name] = {
                d: {"cl.num_pairs": pair_count(d, model, setting.equal_pairs, result.overrides[name])}
                for d in chosen_datasets}
    return result


EPILOG = """\
settings:  long-tail (ρ = 10, 80 examples; with no-imb and extra-imb), long-tail-many-pairs and
           long-tail-few-pairs (every resize at extra-imb's, then no-imb's pair count), few-shot (8 labels per
           class, 8 for validation; with setfit when installed), unlabelled (the same + 256 unlabelled texts for
           phase 1); the cpu preset at the experiment's sizes, its phase 3 for every variant
output:    <out>/<setting>/runs/<run>/ and logs/, as reproduce writes them; <out>/phases_help.md, .csv, .png,
           phases_help_findings.md (the sentences the book quotes), phases_help_resize.csv, phases_help_long_tail.png
rerun:     the same command skips finished runs and resumes killed ones

examples:
  python -m threephase experiment --out reproductions/phases-help                 # the book's run: hours on 2 cores
  python -m threephase experiment --size smallest --datasets sst2 --seeds 2 --out reproductions/ph-ci  # CI: minutes
  python -m threephase experiment --settings few-shot --set data.train_per_class=32 --out reproductions/fs32
"""


def add_experiment_parser(commands) -> None:
    parser = commands.add_parser("experiment", help="when do the phases help? (the book's CPU experiment)",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", help=f"comma-separated (default: {','.join(SETTINGS)})")
    parser.add_argument("--datasets", help=f"comma-separated (default: {','.join(DATASETS)})")
    parser.add_argument("--variants", help="comma-separated: only these of each setting's variants (ft always runs)")
    parser.add_argument("--seeds", default="5", help="a count (5 = seeds 0-4) or a list; default 5")
    parser.add_argument("--size", default="full", choices=tuple(SIZES), help="full (the book's; default) or smallest (CI's)")
    parser.add_argument("--model", default=CPU_MODEL, help="the body (default: all-MiniLM-L6-v2)")
    parser.add_argument("--out", default="reproductions/phases-help",
                        help="output folder (default: reproductions/phases-help, the book's run: give a trial its own)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting in every run, after the setting's own (repeatable)")
    parser.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="rerun runs that already have results.json")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="run N cells at once, each in its own process (default 1)")
    add_executor_options(parser)


def experiment_command(args: argparse.Namespace) -> int:
    settings = split_list(args.settings)
    grid = plan(settings, split_list(args.datasets), args.seeds, args.size, split_list(args.variants), args.model,
                parse_set_options(args.set))
    executor = executor_options(args)
    for name in grid.cells:
        for overrides, cells in grid.groups(name):
            check_grid(cells, overrides, args.jobs)
    failed = []
    for name in grid.cells:
        for overrides, cells in grid.groups(name):
            failed += run_grid(cells, Path(args.out) / name, overrides, desc=name, device=args.device,
                               overwrite=args.overwrite, jobs=args.jobs, executor=executor)
    queued = still_running(executor, failed)
    if queued is not None:
        return queued
    return report(failed, lambda: write_summary(args.out, settings), to_markdown,
                  f"{args.out}/phases_help.md, .csv and .png")
