"""Does 3-Phase help on my data? ``python -m threephase compare`` runs the book's fair fight on the user's data.

Every method (default: ``three-phase``, ``ft``, ``logreg``, and ``setfit`` when installed; ``ft`` always runs, as the
baseline) trains on the same ``--draws`` of the data with the same ``--seeds``, through the reproduction's grid
(:func:`threephase.grid.reproduce.run_grid`): draw ``k`` is data seed ``k``, which redraws the training subsample
that ``--train-per-class`` or ``--max-train-samples`` asks for (without them every draw trains on the whole training
split, and more than one draw is refused unless something else differs between them, such as the validation and
test splits carved from a single file). The runs live in ``<out>/runs/<data>__<model>__<method>__draw<k>__seed<s>/``,
named as the experiment names its runs; a rerun skips the finished ones.
:mod:`threephase.grid.compare_report` then writes the verdicts, with the book experiment's statistics.

``--search N`` first tunes each method on validation with N Optuna trials (:func:`threephase.grid.search.search`,
each method's default space) on the first draw, then compares each method with its best settings.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import VARIANTS, parse_set_options
from ..errors import ThreePhaseError
from ..presets import CPU_MODEL, PAPER_MODELS, PRESETS
from .cells import cell_config, cell_parameters, failure, run_name
from .compare_report import BASELINE, FILES, compare_table, read_records, write_report
from .jobs import ExecutorOptions, add_executor_options, executor_options, still_running
from .reproduce import absolute_paths, check_grid, parse_seeds, run_grid, split_list
from .search import default_study_name, run_search_jobs, search

logger = logging.getLogger(__name__)

DEFAULT_VARIANTS = ("three-phase", "ft", "logreg", "setfit")


@dataclass
class ComparePlan:
    """What a comparison runs: its methods, draws (data seeds), training seeds and the settings they share."""

    variants: list[str]
    draws: list[int]
    seeds: list[int]
    preset: str
    model: str
    dataset: str | None
    overrides: dict[str, Any]
    # Each method's searched settings (``--search``), applied after the shared ones, and the trials each had.
    tuned: dict[str, dict[str, Any]] = field(default_factory=dict)
    trials: int = 0

    def settings(self, variant: str, draw: int) -> dict[str, Any]:
        return {**self.overrides, **self.tuned.get(variant, {}), "data.seed": draw}

    def cells(self, variants, draw: int) -> list[dict[str, Any]]:
        return [{"dataset": self.dataset, "model": self.model, "variant": v, "draw": draw, "seed": s,
                 "preset": self.preset} for v in variants for s in self.seeds]

    def groups(self, draw: int):
        """(overrides, cells) of one draw: the methods that share their settings run as one grid."""
        by_settings: dict[str, list[str]] = {}
        for variant in self.variants:
            by_settings.setdefault(json.dumps(self.settings(variant, draw), sort_keys=True), []).append(variant)
        for variants in by_settings.values():
            yield self.settings(variants[0], draw), self.cells(variants, draw)

    def config(self, variant: str, draw: int, out: str | Path):
        """The run config of the first seed of ``variant`` on ``draw``, built as its cell builds it."""
        cell = self.cells([variant], draw)[0]
        return cell_config(cell_parameters(cell, out, self.settings(variant, draw)))


def default_variants() -> list[str]:
    """three-phase, ft, logreg, and setfit when its extra is installed."""
    from ..baselines import require_extras

    try:
        require_extras("setfit")
        return list(DEFAULT_VARIANTS)
    except ThreePhaseError:
        logger.info("setfit is not installed: comparing three-phase and logreg with ft.")
        return [v for v in DEFAULT_VARIANTS if v != "setfit"]


def plan_compare(*, dataset: str | None = None, data_dir: str | None = None, text_column: str | None = None,
                 label_column: str | None = None, variants=None, draws: int = 1, seeds: int | str | list = 1,
                 train_per_class: int | None = None, max_train_samples: int | None = None, preset: str = "cpu",
                 model: str | None = None, settings: dict[str, Any] | None = None) -> ComparePlan:
    """The comparison's plan, checked for what can be checked without reading data."""
    variants = list(dict.fromkeys(split_list(variants) if isinstance(variants, str) else variants or
                                  default_variants()))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ThreePhaseError(f"Unknown method {', '.join(map(repr, unknown))} in --variants. Choose among: "
                              f"{', '.join(VARIANTS)}.")
    if BASELINE not in variants:  # every difference is measured against ft
        variants.append(BASELINE)
    if len(variants) < 2:
        raise ThreePhaseError("--variants ft alone compares nothing: add the methods to compare with it, e.g. "
                              "--variants three-phase,ft,logreg.")
    if preset not in PRESETS:
        raise ThreePhaseError(f"Unknown preset {preset!r}. Choose one of: {', '.join(PRESETS)}.")
    if not isinstance(draws, int) or draws < 1:
        raise ThreePhaseError(f"--draws {draws}: draw the data at least once.")
    for name, value in (("--train-per-class", train_per_class), ("--max-train-samples", max_train_samples)):
        if value is not None and value < 1:
            raise ThreePhaseError(f"{name} {value}: give a positive number of training examples.")
    overrides: dict[str, Any] = {"data.data_dir": data_dir, "data.text_column": text_column,
                                 "data.label_column": label_column, "data.train_per_class": train_per_class,
                                 # The user's training split as it is, unless a subsample is asked for: the cpu
                                 # preset's 448-example cap would otherwise pick the rows (JSON null clears it).
                                 "data.max_train_samples": "null" if max_train_samples is None else max_train_samples}
    overrides = absolute_paths({**{k: v for k, v in overrides.items() if v is not None}, **(settings or {})})
    if "data.seed" in overrides:
        raise ThreePhaseError("compare sets data.seed itself (draw k is data seed k): drop --set data.seed and "
                              "choose --draws.")
    seeds = sorted(set(seeds)) if isinstance(seeds, (list, tuple, range)) else parse_seeds(seeds)
    return ComparePlan(variants, list(range(draws)), seeds, preset,
                       model or (CPU_MODEL if preset == "cpu" else PAPER_MODELS["minilm"]), dataset, overrides)


def check_compare(plan: ComparePlan, out: str | Path, jobs: int = 1) -> None:
    """Refuse, before anything trains, what ``run`` would refuse for any run of the plan (settings, missing extras,
    data that cannot be read or drawn), and draws that would all train on the same examples."""
    from ..baselines import require_extras
    from ..data import load_data, sizes_before_subset
    from ..models import check_max_seq_length
    from ..training import check_training_args

    if Path(out).exists() and not Path(out).is_dir():
        raise ThreePhaseError(f"--out {str(out)!r} is a file, not a folder: choose a folder for the comparison.")
    for variant in plan.variants:
        require_extras(variant)
        check_grid(plan.cells([variant], plan.draws[0]), plan.settings(variant, plan.draws[0]), jobs)
        config = plan.config(variant, plan.draws[0], out)
        for phase in ("dae", "cl", "ft"):
            check_training_args(getattr(config, phase).training_args, f"{phase}.training_args")
        check_max_seq_length(config.model_name_or_path, config.max_seq_length)
    data = [load_data(plan.config(BASELINE, draw, out).data) for draw in plan.draws]
    trained = [sorted(d["train"]["text"]) for d in data]
    if len(trained) > 1 and all(texts == trained[0] for texts in trained[1:]):
        whole = sum((sizes_before_subset(data[0]["train"]) or {}).values()) or len(trained[0])
        again = ("Draw fewer per class, or give the training split more rows, or keep --draws 1 and raise --seeds."
                 if whole > len(trained[0]) else "Pass --train-per-class or --max-train-samples (below the split's "
                 f"size, {whole}) to draw a new training subsample per draw, or keep --draws 1 and raise --seeds.")
        raise ThreePhaseError(
            f"--draws {len(plan.draws)}: every draw trains on the same {len(trained[0])} examples (of the training "
            f"split's {whole}), so the draws would repeat one comparison. {again}")


def tune(plan: ComparePlan, trials: int, out: str | Path, executor: ExecutorOptions | None = None) -> list[str]:
    """``--search``: tune every method on validation with ``trials`` Optuna trials on the first draw and seed, and
    keep its best settings in ``plan.tuned``; return the searches still queued (with ``executor``)."""
    import optuna

    queued = []
    for variant in plan.variants:
        config = plan.config(variant, plan.draws[0], out)
        folder = Path(out) / "search" / variant
        if executor is None:
            study = search(config, None, trials, folder)
        else:
            name = default_study_name(config)
            failed, waiting = run_search_jobs(config, None, trials, folder, storage=None, study_name=name,
                                              metric="macro_f1", workers=1, options=executor)
            if failed:
                raise ThreePhaseError(f"The search of {variant} failed: " + "; ".join(failed) + ".")
            if waiting:
                queued += waiting
                continue
            study = optuna.load_study(study_name=name, storage=f"sqlite:///{(folder / 'study.db').resolve()}")
        if not any(t.state.name == "COMPLETE" for t in study.trials):
            raise ThreePhaseError(f"No trial of the search of {variant} completed (see {folder}/trials.csv): raise "
                                  "--search, or compare without it.")
        plan.tuned[variant], plan.trials = dict(study.best_trial.params), trials
        logger.info("%s: best settings on validation %s", variant, plan.tuned[variant])
    return queued


def run_compare(plan: ComparePlan, out: str | Path, *, device: str | None = None, overwrite: bool = False,
                jobs: int = 1, executor: ExecutorOptions | None = None) -> dict[str, list[str]]:
    """Run (or skip, or resume) every run of the plan; return each method's failed runs, one line each."""
    by_variant: dict[str, list[str]] = {}
    for draw in plan.draws:  # draws outermost: a comparison stopped half-way holds whole draws
        for overrides, cells in plan.groups(draw):
            names = {run_name(cell): cell["variant"] for cell in cells}
            for line in run_grid(cells, out, overrides, desc=f"draw {draw}", device=device, overwrite=overwrite,
                                 jobs=jobs, executor=executor):
                variant = next((v for name, v in names.items() if line.startswith(f"{name} ")), None)
                by_variant.setdefault(variant, []).append(line)
    return by_variant


def describe(plan: ComparePlan, records: list[dict[str, Any]], data: str) -> str:
    """The sentence above the table: the data, what a draw is, and how many runs each method made."""
    draws, seeds = len(plan.draws), len(plan.seeds)
    per_class, total = plan.overrides.get("data.train_per_class"), plan.overrides.get("data.max_train_samples")
    if per_class not in (None, "null"):
        drawn = f"each draw samples {per_class} training examples per class anew"
    elif total not in (None, "null"):
        drawn = f"each draw samples {total} training examples anew, in the data's class proportions"
    else:
        drawn = "every draw trains on the whole training split" + (
            "; the draws differ in the validation and test splits carved from it" if draws > 1 else "")
    sizes = records[0].get("split_sizes", {}) if records else {}
    classes = len(records[0].get("label_names", [])) if records else "?"
    split = ", ".join(f"{n} {s}" for s, n in sizes.items())
    return (f"Data: {data} ({classes} classes; per draw {split or 'no finished run'}); {drawn} (draw k = data seed "
            f"k). {draws} draw(s) × {seeds} seed(s) = {draws * seeds} runs per method, preset {plan.preset}, body "
            f"{plan.model}" + (f", each method with its settings tuned on validation ({plan.trials} Optuna trials each, first draw: "
                               f"{', '.join(plan.tuned)})"
                               if plan.tuned else "") + ".")


def compare(data_dir: str | None = None, dataset: str | None = None, *, text_column: str | None = None,
            label_column: str | None = None, variants=None, draws: int = 1, seeds: int | str | list = 1,
            train_per_class: int | None = None, max_train_samples: int | None = None, preset: str = "cpu",
            model: str | None = None, settings: dict[str, Any] | None = None, margin: float | None = None,
            search_trials: int = 0, out: str | Path = "compare", device: str | None = None, overwrite: bool = False,
            jobs: int = 1, executor: ExecutorOptions | None = None) -> pd.DataFrame | None:
    """Compare methods with FT on your data: the table of :func:`~threephase.grid.compare_report.compare_table`
    (one row per method and metric, with its verdict), also written to ``out`` as ``compare.md``, ``.csv``,
    ``.png`` and ``compare_runs.jsonl``. None while an executor's jobs are still queued: call it again later.

    A run that fails is reported in the table (its method's ``failed`` count) and in ``compare.md``, and logged.

    >>> df = compare("my_csv_folder", variants="three-phase,ft,logreg", draws=3, train_per_class=16)  # doctest: +SKIP
    """
    if margin is not None and not margin > 0:
        raise ThreePhaseError(f"--margin {margin}: the equivalence margin is a positive number of points.")
    if search_trials < 0:
        raise ThreePhaseError(f"--search {search_trials}: give a number of trials per method, or 0 for none.")
    plan = plan_compare(dataset=dataset, data_dir=data_dir, text_column=text_column, label_column=label_column,
                        variants=variants, draws=draws, seeds=seeds, train_per_class=train_per_class,
                        max_train_samples=max_train_samples, preset=preset, model=model, settings=settings)
    check_compare(plan, out, jobs)
    out = Path(out)
    if search_trials:
        if tune(plan, search_trials, out, executor):
            print("The searches are still queued or running; rerun the same command when they have ended.")
            return None
        check_compare(plan, out, jobs)  # the searched settings, before they train
    failed = run_compare(plan, out, device=device, overwrite=overwrite, jobs=jobs, executor=executor)
    lines = [line for lines in failed.values() for line in lines]
    if still_running(executor, []) is not None:
        return None
    keep = {(v, d, s) for v in plan.variants for d in plan.draws for s in plan.seeds}
    records = [r for r in read_records(out) if (r["variant"], r.get("data_seed"), r["seed"]) in keep]
    df = compare_table(records, plan.variants, planned=len(plan.draws) * len(plan.seeds), failed=failed,
                       margin=margin)
    write_report(out, df, describe(plan, records, dataset or str(data_dir)), lines)
    if lines:
        logger.warning("%d run(s) failed; compare.md lists them: %s", len(lines), "; ".join(lines))
    df.attrs["failed"] = lines
    return df


EPILOG = """\
methods:   three-phase, ft (always: the baseline), logreg, and setfit when installed (--variants: any of the library's)
draws:     draw k trains on data seed k: --train-per-class / --max-train-samples draw a new training subsample per
           draw; without them every draw trains on the whole training split
output:    <out>/compare.md (the table, a verdict per method in one sentence, what each run cost), compare.csv,
           compare.png (forest plot), compare_runs.jsonl (every run's config and record), runs/<run>/ (one per
           method, draw and seed), logs/, and with --search, search/<method>/ (each method's study)
rerun:     the same command skips finished runs and resumes killed ones

examples:
  python -m threephase compare --data-dir my_csv_folder --draws 3 --seeds 2 --train-per-class 16 --out cmp
  python -m threephase compare --data-dir reviews.csv --text-column review --label-column stars --draws 1 --seeds 3
  python -m threephase compare --data-dir my_csv_folder --train-per-class 32 --draws 5 --search 20 --jobs 2
"""
RUN_OPTIONS = ("dataset", "data_dir", "text_column", "label_column", "model", "preset", "set", "device")


def add_compare_parser(commands) -> None:
    parser = commands.add_parser("compare", help="does 3-Phase help on my data? every method against FT, with verdicts",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    for action in commands.choices["run"]._actions:  # run's data options, shared rather than written twice
        if action.dest in RUN_OPTIONS:
            parser._add_action(action)
    parser.add_argument("--variants", help="comma-separated methods (default: three-phase,ft,logreg and setfit when "
                        "installed; ft always runs)")
    parser.add_argument("--draws", type=int, default=1, metavar="D", help="data draws (default 1); the intervals are "
                        "over draws, so 3 or more make a verdict possible")
    parser.add_argument("--seeds", default="1", help="training seeds per draw: a count or a list (default 1)")
    parser.add_argument("--train-per-class", type=int, metavar="N", help="train on N examples per class, redrawn per draw")
    parser.add_argument("--max-train-samples", type=int, metavar="N",
                        help="train on N examples in the data's class proportions, redrawn per draw")
    parser.add_argument("--margin", type=float, metavar="POINTS",
                        help="equivalence margin in points (default: the book's)")
    parser.add_argument("--search", type=int, default=0, metavar="N",
                        help="first tune each method with N Optuna trials on validation (first draw), then compare")
    parser.add_argument("--out", default="compare", help="output folder (default: compare)")
    parser.add_argument("--overwrite", action="store_true", help="rerun runs that already have results.json")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="run N runs at once, each in its own process")
    add_executor_options(parser, unit="run")


def compare_command(args: argparse.Namespace) -> int:
    executor = executor_options(args)
    df = compare(args.data_dir, args.dataset, text_column=args.text_column, label_column=args.label_column,
                 variants=args.variants, draws=args.draws, seeds=args.seeds, train_per_class=args.train_per_class,
                 max_train_samples=args.max_train_samples, preset=args.preset or "cpu", model=args.model,
                 settings=parse_set_options(args.set), margin=args.margin, search_trials=args.search, out=args.out,
                 device=args.device, overwrite=args.overwrite, jobs=args.jobs, executor=executor)
    if df is None:
        return 0
    for sentence in df.loc[df["metric"] == "accuracy", "sentence"]:
        print(sentence)
    print(f"Wrote {', '.join(str(Path(args.out) / name) for name in FILES if (Path(args.out) / name).is_file())}")
    if df.attrs["failed"]:
        raise failure(df.attrs["failed"])
    return 0
