"""When do the phases help? A CPU experiment, run as a fair fight with enough evidence to answer its questions.

``python -m threephase experiment --out reproductions/phases-help`` runs, for each *setting*
(:data:`threephase.grid.settings.SETTINGS`), its variants over D data draws (``data.seed`` 0..D−1) × S training seeds,
with the ``cpu`` preset at the sizes of :data:`SIZES`, through the reproduction's grid
(:func:`threephase.grid.reproduce.run_grid`). Every method of a setting sees the same draws and seeds. The records go
to ``<out>/phases_help_runs.jsonl`` (one line per run, without machine paths); :mod:`threephase.grid.report` answers
the declared questions (:data:`threephase.grid.settings.QUESTIONS`) from that file alone, so a committed copy rebuilds
the tables (``--report``) and a rerun skips the runs it holds.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import apply_overrides, parse_set_options
from ..errors import ThreePhaseError
from ..imbalance import resized_sizes
from ..notebook import _what
from ..pairs import num_pairs_for
from ..presets import CPU_MODEL, preset_config
from ..records import atomic_write_text
from .cells import run_name
from .jobs import add_executor_options, executor_options, still_running
from .report import RUNS_FILE, read_runs, to_markdown, write_summary
from .reproduce import absolute_paths, check_grid, parse_seeds, report, run_grid, split_list
from .settings import QUESTIONS, SETTINGS

logger = logging.getLogger(__name__)

DRAW_KEYS = ("data.train_per_class", "data.max_train_samples", "data.max_unlabelled_samples", "data.min_per_class",
             "data.validation_per_class", "data.imbalance_factor")

# fp32 whatever the CPU: `auto` is bf16 on a CPU with AMX and fp32 on one without (where bf16 is emulated and many
# times slower), and one setting's draws may run on both kinds of machine. Its records must not change with the
# machine that made them. `--set precision=bf16` still chooses.
PINNED: dict[str, Any] = {"precision": "fp32"}

# The experiment's sizes atop the cpu preset: each run takes a minute or two on 2 CPU cores.
SIZES: dict[str, dict[str, Any]] = {
    # A few-shot split is one to four batches: phases 1 and 2 get their steps from repetitions (4 passes of phase 1,
    # 4x the cpu preset's pairs), so that no phase is a step or two of warm-up. Phase 3 is the cpu preset's, the
    # same recipe for every variant.
    "full": {"max_seq_length": 48, "logging_steps": 50, "data.max_validation_samples": 48,
             "data.max_test_samples": 300, "dae.num_train_epochs": 4, "cl.pair_multiplier": 4},
    # The smallest form, which CI runs: it proves the grid, the aggregation and the files, not any result.
    "smallest": {"max_seq_length": 24, "logging_steps": 50, "data.max_validation_samples": 16,
                 "data.max_test_samples": 32, "data.max_unlabelled_samples": 16, "data.max_train_samples": 24,
                 "data.train_per_class": 3, "data.validation_per_class": 3, "data.min_per_class": 2,
                 "data.imbalance_factor": 2,  # a tail of 21 snips2 examples (4/4/3/3/3/2/2), not 57
                 "dae.num_train_epochs": 1, "cl.pair_multiplier": 1, "ft.num_train_epochs": 1, "ft.min_epochs": 1},
}


@dataclass
class Plan:
    """The cells of each setting and the overrides of each (dataset, draw) group of them."""

    cells: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Per setting and (dataset, draw): what that group adds (the draw's data.seed, a dataset's labels, a pair count).
    group_overrides: dict[str, dict[tuple[str, int], dict[str, Any]]] = field(default_factory=dict)
    # Per setting and variant: what that variant adds last (its own tuned phase 3, Setting.per_variant).
    variant_overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def groups(self, name: str):
        """(overrides, cells) of setting ``name``, one group per (dataset, draw), draws outermost: a setting stopped
        half-way holds whole draws, every variant of them. A group splits by the variants' own overrides, if any."""
        own = self.variant_overrides.get(name, {})
        for key in sorted(self.group_overrides[name], key=lambda k: (k[1], k[0])):
            base = {**self.overrides[name], **self.group_overrides[name][key]}
            parts: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
            for cell in (c for c in self.cells[name] if (c["dataset"], c["draw"]) == key):
                extra = own.get(cell["variant"], {})
                parts.setdefault(json.dumps(extra, sort_keys=True), (extra, []))[1].append(cell)
            for extra, cells in parts.values():
                yield {**base, **extra}, cells


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


def baselines(name: str) -> list[str]:
    """The variants that setting ``name``'s own runs are compared with in the questions (they always run)."""
    return list(dict.fromkeys(b for q in QUESTIONS.values() for s, _, _, bs, b in q.comparisons
                              if bs == name and s == name))


def plan(settings=None, datasets=None, seeds: str | int | None = None, size: str = "full", variants=None,
         model: str = CPU_MODEL, extra: dict[str, Any] | None = None, draws: int | None = None) -> Plan:
    """The grid: for each setting, (dataset × draw × its variants × seed) cells and the overrides of each group.
    ``draws`` and ``seeds`` default to each setting's own (its ``draws``, ``seeds``); ``max_draws`` caps draws."""
    if size not in SIZES:
        raise ThreePhaseError(f"Unknown size {size!r}. Choose one of: {', '.join(SIZES)}.")
    if draws is not None and draws < 1:
        raise ThreePhaseError(f"--draws {draws}: run at least one data draw.")
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
        chosen += [b for b in baselines(name) if b not in chosen]  # every difference needs its baseline
        # In the full size the setting's own choices beat the size's budget (a size-free setting takes none of it);
        # the smallest form caps everything. A size's draw caps apply only where the setting draws that way.
        budget = {k: v for k, v in SIZES[size].items() if k not in DRAW_KEYS}
        draw_caps = {k: v for k, v in SIZES[size].items() if k in DRAW_KEYS and k in setting.overrides}
        if size == "smallest":
            ordered = {**setting.overrides, **budget}
        else:
            ordered = setting.overrides if setting.size_free else {**budget, **setting.overrides}
        result.overrides[name] = absolute_paths({**PINNED, **ordered, **draw_caps, **(extra or {})})
        count = draws or setting.draws
        count = min(count, setting.max_draws) if setting.max_draws else count
        seed_list = parse_seeds(seeds if seeds is not None else setting.seeds)
        result.cells[name], result.group_overrides[name] = [], {}
        result.variant_overrides[name] = {v: dict(o) for v, o in setting.per_variant.items() if v in chosen}
        for dataset in datasets or setting.datasets:
            for draw in range(count):
                own = {} if size == "smallest" else setting.per_dataset.get(dataset, {})
                group = {**own, **(extra or {}), "data.seed": draw}
                if setting.equal_pairs:
                    group["cl.num_pairs"] = pair_count(dataset, model, setting.equal_pairs,
                                                       {**result.overrides[name], **group})
                result.group_overrides[name][dataset, draw] = group
                result.cells[name] += [{"dataset": dataset, "model": model, "variant": v, "seed": s,
                                        "preset": "cpu", "draw": draw} for v in chosen for s in seed_list]
    return result


def _key(setting: str, cell_or_record: dict[str, Any]) -> tuple[str, str]:
    return setting, run_name(cell_or_record)


def collect_runs(out: str | Path, settings) -> dict[tuple[str, str], dict[str, Any]]:
    """The runs file merged with every finished run folder under ``<out>/<setting>/runs/`` (a folder's record wins:
    it is the newer), written back atomically; returns the merged entries. A folder that a plain ``run`` command
    wrote (``metrics.json`` without the grid's ``results.json``) counts too, with its record as ``run`` wrote it."""
    entries = read_runs(out)
    for name in settings:
        for folder in sorted(p for p in (Path(out) / name).glob("runs/*") if (p / "metrics.json").is_file()):
            results = folder / "results.json"
            record = json.loads((results if results.is_file() else folder / "metrics.json").read_text())
            if "parameters" in record:
                record["parameters"] = _what(record["parameters"])
            config = json.loads((folder / "config.json").read_text())
            entries[name, folder.name] = {"setting": name, "name": folder.name, "config": _what(config),
                                          "record": record}
    if entries:
        lines = [json.dumps(e, sort_keys=True) for _, e in sorted(entries.items())]
        atomic_write_text(Path(out) / RUNS_FILE, "\n".join(lines) + "\n")
    return entries


def _unapplied(entry: dict[str, Any], overrides: dict[str, Any]) -> list[str]:
    """The overrides that the held run's saved config contradicts (a dotted key the config does not hold is not
    checked: paths are left out of the records)."""
    wrong = []
    for key, value in overrides.items():
        node: Any = entry.get("config", {})
        for part in key.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if key == "precision":  # what the run computed in (`auto` resolved), not what it asked for
            node = entry.get("record", {}).get("precision", node)
        if node is not _MISSING and json.loads(json.dumps(node)) != json.loads(json.dumps(value)):
            wrong.append(f"{key}={node!r}, not {value!r}")
    return wrong


_MISSING = object()


def held(cells, setting: str, overrides: dict[str, Any], entries) -> list[dict[str, Any]]:
    """The cells the runs file already holds with these overrides; a held run made with others is an error."""
    found = []
    for cell in cells:
        entry = entries.get(_key(setting, cell))
        if entry is None:
            continue
        if "parameters" not in entry["record"]:  # a plain `run` with the folder's name: its own settings, held
            found.append(cell)
            continue
        had = entry["record"]["parameters"].get("overrides", {})
        if "precision" not in had and "precision" in overrides:  # run before the pin: what `auto` resolved to
            had = {**had, "precision": entry["record"].get("precision", "fp32")}
        if json.loads(json.dumps(had)) != json.loads(json.dumps(overrides)):
            changed = sorted(k for k in set(had) | set(overrides) if had.get(k) != overrides.get(k))
            raise ThreePhaseError(f"{RUNS_FILE} holds {setting}/{entry['name']} made with other settings ({changed}): "
                                  "remove its line to rerun it, or choose another --out")
        if unapplied := _unapplied(entry, overrides):
            raise ThreePhaseError(f"{RUNS_FILE} holds {setting}/{entry['name']}, whose record names overrides its "
                                  f"config does not have ({unapplied}; the grid once dropped overrides set "
                                  "to None): remove its line to rerun it")
        found.append(cell)
    return found


EPILOG = """\
design:    each setting runs D data draws (data.seed 0..D-1) x S training seeds; every method of a setting sees the
           same draws and seeds. Defaults: long-tail 18 x 3, -equal-pairs and -tuned 12 x 3, few-shot and
           unlabelled 8 x 3, full-sst5 1 x 3 (one draw: the whole training set). Questions (one Holm family each)
           and the margin are in threephase/grid/settings.py and the book's chapter.
output:    <out>/<setting>/runs/<run>/ and logs/, as reproduce writes them; <out>/phases_help_runs.jsonl (every run's
           config and record, no paths); phases_help.md, .csv (one row per comparison: verdict, mde, draws, seeds),
           phases_help_findings.md (one sentence per comparison), phases_help.png (forest plot),
           phases_help_design.md, phases_help_long_tail.png, phases_help_paper.md (full-sst5 beside the paper)
rerun:     the same command skips the runs the runs file or the run folders hold and resumes killed ones;
           --report rebuilds the files from <out>/phases_help_runs.jsonl without running anything (after adding
           any <out>/<setting>/runs/<name>/ that a plain `run` wrote there, named as the experiment names it)

examples:
  python -m threephase experiment --settings long-tail,long-tail-equal-pairs --out reproductions/phases-help
  python -m threephase experiment --settings full-sst5 --seeds 3 --out reproductions/phases-help   # hours
  python -m threephase experiment --report --out book/results                  # the book's files from its records
  python -m threephase experiment --size smallest --datasets sst2 --draws 2 --seeds 1 --out /tmp/ci-help  # CI's
"""


def add_experiment_parser(commands) -> None:
    parser = commands.add_parser("experiment", help="when do the phases help? (the book's CPU experiment)",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", help=f"comma-separated (default: {','.join(SETTINGS)})")
    parser.add_argument("--datasets", help="comma-separated (default: each setting's own)")
    parser.add_argument("--variants", help="comma-separated: only these of each setting's variants (the baselines "
                        "of its comparisons always run)")
    parser.add_argument("--draws", type=int, help="data draws per setting (default: each setting's own; full-sst5 "
                        "has one)")
    parser.add_argument("--seeds", help="a count (3 = seeds 0-2) or a list (default: each setting's own, 3)")
    parser.add_argument("--size", default="full", choices=tuple(SIZES), help="full (the book's; default) or smallest (CI's)")
    parser.add_argument("--model", default=CPU_MODEL, help="the body (default: all-MiniLM-L6-v2)")
    parser.add_argument("--out", default="reproductions/phases-help",
                        help="output folder (default: reproductions/phases-help)")
    parser.add_argument("--report", action="store_true",
                        help=f"run nothing: rebuild the tables and figures from <out>/{RUNS_FILE}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting in every run, after the setting's own (repeatable)")
    parser.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="rerun runs that already have results.json")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="run N cells at once, each in its own process (default 1)")
    add_executor_options(parser)


def experiment_command(args: argparse.Namespace) -> int:
    settings = split_list(args.settings)
    if args.report:
        collect_runs(args.out, SETTINGS)  # run folders that plain `run` commands wrote join the runs file
        write_summary(args.out)
        print(f"Wrote the tables in {args.out} from {RUNS_FILE}")
        return 0
    grid = plan(settings, split_list(args.datasets), args.seeds, args.size, split_list(args.variants), args.model,
                parse_set_options(args.set), args.draws)
    executor = executor_options(args)
    for name in grid.cells:
        for overrides, cells in grid.groups(name):
            check_grid(cells, overrides, args.jobs)
    entries = {} if args.overwrite else collect_runs(args.out, list(grid.cells))  # plain `run` folders too
    failed = []
    for name in grid.cells:
        for overrides, cells in grid.groups(name):
            holding = held(cells, name, overrides, entries)
            todo = [c for c in cells if c not in holding]
            if holding:
                print(f"{name}: {len(holding)} run(s) of data draw {cells[0]['draw']} held in {RUNS_FILE}: skipped")
            if todo:
                failed += run_grid(todo, Path(args.out) / name, overrides, desc=f"{name} draw {cells[0]['draw']}",
                                   device=args.device, overwrite=args.overwrite, jobs=args.jobs, executor=executor)
            collect_runs(args.out, [name])  # each draw's records are safe in the runs file as soon as it ends
    queued = still_running(executor, failed)
    if queued is not None:
        return queued
    return report(failed, lambda: write_summary(args.out), to_markdown, f"{args.out}/phases_help.md, .csv and .png")
