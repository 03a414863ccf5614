"""Tuning on validation, with the same budget for every variant and baseline: ``python -m threephase search``.

An Optuna study (TPE sampler seeded with the run's seed, median pruning of phase 3 on its per-epoch validation
score) runs ``n_trials`` trials; each trial is a :func:`threephase.run` with the settings it drew, scored on the
validation split (``macro_f1`` or ``accuracy``). The test split is dropped as soon as a trial's data is loaded
(``run(..., evaluate_test=False)``), so a search cannot read it: choose settings here, then measure them on test
with ``python -m threephase run --config <out>/best_config.json``.

A search-space file is a JSON object of settings (the names ``--set`` takes) and their ranges::

    {"ft.learning_rate": {"low": 1e-5, "high": 1e-3, "log": true},
     "ft.num_train_epochs": {"low": 5, "high": 20, "int": true},
     "dae.deletion_ratio": {"low": 0.3, "high": 0.7, "step": 0.1},
     "cl.pair_multiplier": {"choices": [1, 2, 4]}}

Each variant and baseline has a default space in ``threephase/spaces/<variant>.json``. The study lives in
``<out>/study.db`` (SQLite) unless ``storage`` names another Optuna RDB URL (several machines may share one study);
rerunning the same command resumes it, and ``n_trials`` counts the finished (complete or pruned) trials, so a rerun
only runs the missing ones. Trials killed with the process are marked failed (Optuna's heartbeat) and not counted.
``<out>`` receives ``best_config.json`` (the searched settings of the best trial, with the variant, preset and
dataset they apply to), ``trials.csv``, ``trials.png`` and, in ``trials/<number>/``, each trial's run record
(``config.json``, ``metrics.json``; the classifier is not kept, and a pruned trial leaves no folder).

With ``--executor``, :func:`run_search_jobs` runs the search as ``--workers`` submitit jobs (:class:`SearchJob`,
through :func:`~threephase.grid.jobs.run_tasks`) that share one study.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from ..config import RunConfig, apply_overrides, changed_settings, read_json_overrides
from ..errors import ThreePhaseError
from ..records import atomic_write_text, write_figure, write_json
from .jobs import Checkpointable, ExecutorOptions, add_executor_options, executor_options, run_tasks

logger = logging.getLogger(__name__)

SPACES_DIR = Path(__file__).parents[1] / "spaces"
METRICS = ("macro_f1", "accuracy")
# Settings a trial may not change: they say what is compared (the variant, the data and so the validation split,
# the seed) or where it runs, not how it trains.
FIXED = ("variant", "preset", "seed", "output_dir", "device")
RANGE_KEYS = {"low", "high", "log", "int", "step"}
HEARTBEAT_S = 60  # a trial whose process died is marked failed after two missed heartbeats


def default_space_path(variant: str) -> Path:
    """The space file shipped for ``variant``: ``threephase/spaces/<variant>.json``."""
    return SPACES_DIR / f"{variant}.json"


def load_space(space: dict[str, Any] | str | Path) -> tuple[dict[str, Any], str]:
    """The search space (a dict, or a JSON file's path) and how to name it in messages."""
    if isinstance(space, dict):
        return space, "the search space"
    values = read_json_overrides(space)
    return values, f"search space {str(space)!r}"


def _annotation(key: str) -> str:
    """The declared type of setting ``key`` ("int", "float | None", ...; "" inside a dict setting)."""
    target: Any = RunConfig
    for part in key.split("."):
        found = {f.name: f for f in dataclasses.fields(target)}.get(part) if dataclasses.is_dataclass(target) else None
        if found is None:
            return ""
        target = found.default_factory if found.default_factory is not dataclasses.MISSING else found.type
    return target if isinstance(target, str) else ""


def check_space(space: dict[str, Any], config: RunConfig, source: str = "the search space") -> None:
    """Raise :class:`ThreePhaseError` for a space no search can use: an unknown or fixed setting, a malformed or
    empty range, or an end of a range that ``config`` with it would reject."""
    if not space:
        raise ThreePhaseError(f"{source} names no setting: give at least one, e.g. "
                              '{"ft.learning_rate": {"low": 1e-5, "high": 1e-3, "log": true}}.')
    for key, spec in space.items():
        where = f"{source[0].upper()}{source[1:]}, {key!r}"
        if key in FIXED or key.startswith("data."):
            raise ThreePhaseError(f"{where}: a search cannot vary {key!r} (every trial must train the same variant "
                                  "on the same data with the same seed); fix it with --set or the run options instead.")
        if not isinstance(spec, dict):
            raise ThreePhaseError(f"{where}: give a range as a JSON object, {{\"low\": ..., \"high\": ...}} "
                                  "(optionally \"log\", \"int\", \"step\"), or {\"choices\": [...]}.")
        if "choices" in spec:
            values = spec["choices"]
            if set(spec) != {"choices"}:
                raise ThreePhaseError(f"{where}: \"choices\" stands alone; drop {sorted(set(spec) - {'choices'})}.")
            if not isinstance(values, list) or not values or not all(
                    v is None or isinstance(v, (bool, int, float, str)) for v in values):
                raise ThreePhaseError(f"{where}: \"choices\" must be a non-empty list of numbers, strings, "
                                      "true/false or null.")
        else:
            unknown = set(spec) - RANGE_KEYS
            if unknown or not {"low", "high"} <= set(spec):
                raise ThreePhaseError(f"{where}: a range has \"low\" and \"high\" (and optionally \"log\", \"int\", "
                                      f"\"step\"); got {sorted(spec)}.")
            low, high, step = spec["low"], spec["high"], spec.get("step")
            numbers = [v for v in (low, high, step) if v is not None]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
                raise ThreePhaseError(f"{where}: \"low\", \"high\" and \"step\" must be numbers.")
            if not low < high:
                raise ThreePhaseError(f"{where}: \"low\" ({low}) must be below \"high\" ({high}).")
            if spec.get("log") and low <= 0:
                raise ThreePhaseError(f"{where}: a log range needs \"low\" > 0, got {low}.")
            if spec.get("log") and step is not None:
                raise ThreePhaseError(f"{where}: give \"log\" or \"step\", not both (Optuna samples one or the other).")
            if step is not None and step <= 0:
                raise ThreePhaseError(f"{where}: \"step\" must be positive, got {step}.")
            if spec.get("int") and not all(float(v).is_integer() for v in numbers):
                raise ThreePhaseError(f"{where}: an \"int\" range needs whole numbers, got {numbers}.")
            if _annotation(key).split(" ")[0] == "int" and not spec.get("int"):
                raise ThreePhaseError(f"{where}: the setting is a whole number; add \"int\": true to the range.")
            values = [low, high]
        for value in values:
            try:
                apply_overrides(config, {key: value}).validate()
            except ThreePhaseError as err:
                raise ThreePhaseError(f"{where}: the value {value!r} cannot be used. {err}") from None


def suggest(trial, key: str, spec: dict[str, Any]) -> Any:
    """The value of ``key`` that ``trial`` draws from ``spec`` (a range or choices of a checked space)."""
    if "choices" in spec:
        return trial.suggest_categorical(key, spec["choices"])
    if spec.get("int"):
        return trial.suggest_int(key, int(spec["low"]), int(spec["high"]), step=int(spec.get("step") or 1),
                                 log=bool(spec.get("log")))
    return trial.suggest_float(key, spec["low"], spec["high"], step=spec.get("step"), log=bool(spec.get("log")))


def default_study_name(config: RunConfig) -> str:
    data = config.data.dataset or Path(config.data.data_dir or "data").name
    return f"{data}-{config.variant}"


def study_storage(out: str | os.PathLike, storage: str | None = None) -> str:
    """The study's Optuna RDB URL: ``storage``, or SQLite in ``<out>/study.db`` (the default)."""
    return storage or f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def checked_space(space: dict[str, Any] | str | Path | None, config: RunConfig) -> dict[str, Any]:
    """The search space (``None``: the variant's default), checked against ``config`` before anything runs."""
    values, source = load_space(default_space_path(config.variant) if space is None else space)
    check_space(values, config, source)
    return values


def _open_study(storage: str, name: str, seed: int, pruner):
    import optuna

    try:
        with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna; it has been there since 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            rdb = optuna.storages.RDBStorage(storage, heartbeat_interval=HEARTBEAT_S, grace_period=2 * HEARTBEAT_S)
    except Exception as err:  # SQLAlchemy's and Optuna's errors for a bad URL or an unreachable database
        raise ThreePhaseError(f"Cannot open the study storage {storage!r} ({type(err).__name__}: {err}): pass an "
                              "Optuna RDB URL, e.g. sqlite:///searches/study.db or postgresql://user@host/db.") from None
    return optuna.create_study(
        storage=rdb, study_name=name, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    )


def _check_same_search(study, space: dict[str, Any], config: RunConfig, metric: str) -> None:
    """A resumed study must go on with the space, metric and settings it started with, or TPE mixes two searches."""
    wanted = {"space": json.loads(json.dumps(space)), "metric": metric, "settings": config.to_dict()}
    saved = study.user_attrs.get("search")
    if saved is None:
        # One attribute, written at once: a second worker opening the study meanwhile (jobs that start together)
        # sees the whole search or none of it, never the space without its settings.
        study.set_user_attr("search", wanted)
        return
    ignore = ("output_dir", "device", "data_dir")  # where a trial runs, which may differ between machines
    changed = [name for name in ("space", "metric") if saved.get(name) != wanted[name]]
    settings = changed_settings(saved.get("settings", {}), wanted["settings"], ignore)
    if changed or settings:
        what = ", ".join(changed + ([f"settings ({settings})"] if settings else []))
        raise ThreePhaseError(f"Study {study.study_name!r} was started with another {what}. Resume it with the same "
                              "command, or start a new search with another --out (or --study-name).")


FINISHED = ("COMPLETE", "PRUNED")


def finished_trials(study) -> int:
    return sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False))


def search(config: RunConfig, space: dict[str, Any] | str | Path | None = None, n_trials: int = 20,
           out: str | Path = "searches/search", *, storage: str | None = None, study_name: str | None = None,
           metric: str = "macro_f1", data=None, pruner=None):
    """Tune ``config`` on validation: run trials until the study holds ``n_trials`` finished ones; write
    ``best_config.json``, ``trials.csv`` and ``trials.png`` to ``out``; return the :class:`optuna.Study`.

    ``space`` is a dict or a JSON file (see the module's docs; default: the variant's). ``data`` replaces the data
    that ``config.data`` names, as in :func:`threephase.run`. ``pruner`` replaces the median pruner.

    >>> from threephase import preset_config  # doctest: +SKIP
    >>> study = search(preset_config("cpu", "snips2", variant="ft"), n_trials=20, out="searches/ft")  # doctest: +SKIP
    >>> study.best_params  # doctest: +SKIP
    """
    import optuna

    from ..baselines import require_extras
    from ..data import load_data
    from ..finetune import EPOCH_CALLBACK
    from ..user_data import prepare_data

    config.validate()
    require_extras(config.variant)
    if metric not in METRICS:
        raise ThreePhaseError(f"Unknown metric {metric!r}: use one of {', '.join(METRICS)}.")
    if n_trials < 1:
        raise ThreePhaseError(f"n_trials must be at least 1, got {n_trials}.")
    space = checked_space(space, config)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ThreePhaseError(f"--out {str(out)!r} is a file, not a folder: choose a folder for the search.")
    # Loaded once, before anything is written: bad data fails here, and every trial trains on the same rows. The
    # test split stays in (a missing one would be carved from train again); each trial's run drops it unread.
    data = load_data(config.data) if data is None else prepare_data(data, config.data)
    out.mkdir(parents=True, exist_ok=True)
    study = _open_study(study_storage(out, storage), study_name or default_study_name(config), config.seed, pruner)
    _check_same_search(study, space, config, metric)

    def objective(trial) -> float:
        from ..pipeline import run

        values = {key: suggest(trial, key, spec) for key, spec in space.items()}
        folder = out / "trials" / str(trial.number)

        def prune(epoch: int, scores: dict[str, float]) -> None:
            trial.report(scores[metric], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation {metric} {scores[metric]:.4f} at phase-3 epoch {epoch}")

        token = EPOCH_CALLBACK.set(prune)
        try:
            result = run(apply_overrides(config, {**values, "output_dir": str(folder)}), data=data, overwrite=True,
                         evaluate_test=False)
        except optuna.TrialPruned:
            shutil.rmtree(folder, ignore_errors=True)  # an unfinished run record says nothing a pruned trial needs
            raise
        finally:
            EPOCH_CALLBACK.reset(token)
        shutil.rmtree(folder / "classifier", ignore_errors=True)  # a body per trial would fill the disk
        trial.set_user_attr("run_folder", str(folder))
        return float(result.metrics[metric])

    missing = n_trials - finished_trials(study)
    if missing > 0:
        study.optimize(objective, n_trials=missing,
                       callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=tuple(
                           optuna.trial.TrialState[s] for s in FINISHED))])
    else:
        logger.info("Study %r already holds %d finished trials: nothing to run.", study.study_name, n_trials)
    write_outputs(study, out, config, space, metric)
    return study


def best_config(study, config: RunConfig) -> dict[str, Any]:
    """The best trial's settings with the variant, preset, dataset and model they apply to, for ``--config``."""
    return {"variant": config.variant, "preset": config.preset, "data.dataset": config.data.dataset,
            "model_name_or_path": config.model_name_or_path, **study.best_trial.params}


def write_outputs(study, out: Path, config: RunConfig, space: dict[str, Any], metric: str) -> None:
    """``trials.csv`` and ``trials.png`` always; ``best_config.json`` once a trial has completed."""
    import matplotlib.pyplot as plt
    import optuna

    atomic_write_text(out / "trials.csv", study.trials_dataframe().to_csv(index=False))
    if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        write_json(out / "best_config.json", best_config(study, config))
    else:
        logger.warning("No trial of %r has completed (all pruned or failed): no best_config.json.", study.study_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)  # "no artists with labels" when no trial has completed
        axes = optuna.visualization.matplotlib.plot_optimization_history(study, target_name=f"validation {metric}")
    axes.set_title(f"{study.study_name}: {len(space)} settings searched")
    write_figure(out / "trials.png", axes.figure, dpi=120, bbox_inches="tight")
    plt.close(axes.figure)


class SearchJob(Checkpointable):
    """One search worker against a shared study. Requeued, it makes the same call (Checkpointable's checkpoint);
    Optuna's heartbeat marks the trial it was killed in failed."""

    def __call__(self, config, space, n_trials, out, storage, study_name, metric):
        from ..logs import quiet_logging

        quiet_logging()
        study = search(config, space, n_trials, out, storage=storage, study_name=study_name, metric=metric)
        return {"status": "ran", "finished_trials": finished_trials(study)}


def run_search_jobs(config, space, n_trials: int, out: str | os.PathLike, *, storage: str | None, study_name: str,
                    metric: str, workers: int, options: ExecutorOptions) -> tuple[list[str], list[str]]:
    """Run a search as ``workers`` jobs sharing one Optuna study; return (failed, queued) lines. A rerun submits
    workers again only while the study lacks finished trials."""
    import optuna

    if workers < 1:
        raise ThreePhaseError(f"--workers {workers}: run at least one worker.")
    config.validate()  # what search() checks first, here before any job is queued
    checked_space(space, config)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    storage = study_storage(out, storage)
    if options.kind == "slurm" and storage.startswith("sqlite") and workers > 1:
        print("note: several jobs share a SQLite study file; that needs a file system with working locks (not "
              "every NFS has them). Use --storage postgresql://... (or mysql://...) when in doubt.")

    def finished() -> int:
        try:
            return finished_trials(optuna.load_study(study_name=study_name, storage=storage))
        except KeyError:  # no such study yet
            return 0

    complete = lambda task: ("finished", "") if finished() >= n_trials else None  # noqa: E731
    tasks = {f"worker{i}": (config, space, n_trials, str(out), storage, study_name, metric) for i in range(workers)}
    return run_tasks(tasks, SearchJob(), out, options, name=f"threephase-search-{out.name}", settled=complete,
                     force=finished() < n_trials)


# The run command's data, variant and preset options, shared with it rather than written twice.
RUN_OPTIONS = ("dataset", "data_dir", "text_column", "label_column", "model", "variant", "preset", "seed", "config",
               "set", "device")


def add_search_parser(commands) -> None:
    parser = commands.add_parser(
        "search", help="tune a variant's settings on validation (Optuna), the test split unread",
        description="Tune a variant or baseline on validation: each trial is a run scored on the validation split; "
                    "the test split is never loaded. Rerun the same command to resume a killed search.")
    for action in commands.choices["run"]._actions:  # what ``parents=`` does, for a subset of run's options
        if action.dest in RUN_OPTIONS:
            parser._add_action(action)
    parser.add_argument("--space", help="search-space JSON file (default: threephase/spaces/<variant>.json)")
    parser.add_argument("--n-trials", type=int, default=20, metavar="N",
                        help="finished trials the study should hold (default 20; a resumed study runs the rest)")
    parser.add_argument("--storage", help="Optuna RDB URL of the study (default: sqlite:///<out>/study.db)")
    parser.add_argument("--study-name", help="default: <dataset>-<variant>")
    parser.add_argument("--metric", default="macro_f1", choices=METRICS, help="validation score to maximise (default: macro_f1)")
    parser.add_argument("--out", required=True, help="folder for study.db, best_config.json, trials.csv/.png, trials/")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="with --executor: N jobs that share the study, each running trials until it holds "
                             "--n-trials finished ones (default 1)")
    add_executor_options(parser, unit="search worker", pool=False)


def search_command(args: argparse.Namespace) -> int:
    from ..presets import config_from_options

    config = config_from_options(args)  # as run takes them: preset, --config, the flags typed, --set last
    options = executor_options(args)
    if options is not None:
        import optuna

        name = args.study_name or default_study_name(config)
        failed, queued = run_search_jobs(config, args.space, args.n_trials, args.out, storage=args.storage,
                                         study_name=name, metric=args.metric, workers=args.workers, options=options)
        if failed:
            raise ThreePhaseError(f"{len(failed)} search worker(s) failed: " + "; ".join(failed) + ".")
        if queued:
            print(f"{len(queued)} search worker(s) still queued or running: " + "; ".join(queued) +
                  ". Rerun the same command to see the study; it submits workers again only while trials are missing.")
            return 0
        study = optuna.load_study(study_name=name, storage=study_storage(args.out, args.storage))
    else:
        if args.workers != 1:
            raise ThreePhaseError("--workers needs --executor slurm (or local); without it the search runs here.")
        study = search(config, args.space, args.n_trials, args.out, storage=args.storage, study_name=args.study_name,
                       metric=args.metric)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    print(json.dumps({"out": args.out, "study": study.study_name, "finished_trials": finished_trials(study),
                      **({"best_value": study.best_value, "best_params": study.best_params} if complete else {})}))
    return 0
