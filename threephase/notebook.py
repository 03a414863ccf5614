"""What the book's notebooks share: a run config from their parameters, and "load a saved result if present, else
train" for the body after phase 1 / DAE, the body after phase 2 / CL, and whole runs.

Reruns of a notebook (and the book build) then only pay for what changed. A saved result is reused only when it was
made with the same settings (:func:`cache_key`); otherwise it is trained again and replaced.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .config import RunConfig, apply_overrides
from .errors import ThreePhaseError
from .links import BOOK_URL
from .precision import resolve_precision
from .presets import preset_config
from .records import atomic_dir


# Sizes small enough that a phase notebook runs in seconds on a CPU (and the book builds in CI); the ``cpu``
# preset's own subset (448 examples in the data's proportions, length 64) is sized for a full run of a few minutes instead.
# Phase 1 reads the texts 4 times (with fresh noise: 28 optimizer steps on snips2, the cpu preset's count, where one
# pass would be 7 and warn that it trains nothing), phase 2 gets enough pairs (4 × ⌊log2 K⌋ × examples) for the
# projections to show what it does, and every step is logged so that the loss curves have points. The diagnostics
# use validation (20 per class); test is for final scores.
SMALL = {"data.train_per_class": 16, "data.validation_per_class": 20, "data.test_per_class": 20, "max_seq_length": 32,
         "dae.num_train_epochs": 4, "cl.pair_multiplier": 4, "logging_steps": 1}

# The smallest size that still proves a notebook runs top to bottom. CI builds the book with
# THREEPHASE_NOTEBOOK_SIZE=ci, so that a change is checked in minutes; the published book uses the sizes above.
CI_SIZE = {"data.train_per_class": 6, "data.validation_per_class": 3, "data.test_per_class": 6, "max_seq_length": 24,
           "dae.num_train_epochs": 1, "cl.pair_multiplier": 1, "ft.num_train_epochs": 2, "ft.min_epochs": 1}
SIZE_ENV = "THREEPHASE_NOTEBOOK_SIZE"
# The sizes ``$THREEPHASE_NOTEBOOK_SIZE`` may name. ``book`` (the default) is each notebook's own size, which made
# the published pages (the Pages workflow sets it); ``ci`` is :data:`CI_SIZE`.
SIZES = ("book", "ci")
PUBLISHED_SIZE = "book"


def notebook_size() -> str:
    """The size named by ``$THREEPHASE_NOTEBOOK_SIZE`` (one of :data:`SIZES`; unset or empty is ``book``).

    An unknown name is an error rather than the default, so that a misspelt size cannot publish the wrong book."""
    name = os.environ.get(SIZE_ENV, "").strip().lower() or PUBLISHED_SIZE
    if name not in SIZES:
        raise ThreePhaseError(f"${SIZE_ENV}={os.environ[SIZE_ENV]!r} is not a notebook size: set it to one of "
                              f"{', '.join(SIZES)} (or leave it unset for {PUBLISHED_SIZE!r})")
    return name


def size_folder(name: str) -> str:
    """``runs/<name>-<size>``: a notebook's own run folder, one per notebook size, so that a build at one size never
    finds (and refuses to resume) the other size's run in it."""
    return f"runs/{name}-{notebook_size()}"


def ci_size() -> bool:
    """True when ``$THREEPHASE_NOTEBOOK_SIZE`` is ``ci``: the cpu preset then runs at :data:`CI_SIZE`."""
    return notebook_size() == "ci"


# Set by the book's Sphinx extension (book/_ext/book_site.py) for the kernels a `jupyter-book build` starts.
BUILD_ENV = "THREEPHASE_BOOK_BUILD"


def static_widgets() -> bool:
    """True inside a book build: no front end is there to move a slider, and a cell that creates ipywidgets can
    stall the headless execution until its timeout (kernel and client both idle; the open nbclient/ipywidgets
    deadlock, jupyter/nbclient#312, jupyter/nbconvert#2029). Jupyter and Colab get the live widgets."""
    return os.environ.get(BUILD_ENV, "").strip() not in ("", "0")


def interact(fn: Callable[..., Any], **controls):
    """``ipywidgets.interact(fn, **controls)`` in Jupyter or Colab (``controls`` as ipywidgets abbreviations, e.g.
    ``(1.0, 100.0, 1.0)`` for a float slider starting at ``fn``'s default); in a book build, ``fn()`` once with its
    defaults and no widget at all, so the page shows the initial state as a static output."""
    if static_widgets():
        fn()
        return None
    import ipywidgets

    return ipywidgets.interact(fn, **controls)


class SizeBanner:
    """A warning box shown at the top of a notebook executed at the CI size (HTML in the book and in Jupyter)."""

    css_class = "threephase-size-banner"  # scripts/check_book.py looks for it

    def _repr_html_(self) -> str:
        return (f'<div class="admonition warning {self.css_class}"><p class="admonition-title">CI-size build: these '
                "numbers only prove that the code runs</p><p>This page was executed with "
                f"<code>{SIZE_ENV}=ci</code>: a handful of examples per class and a single short epoch, so its "
                "accuracies, clusters and curves mean nothing. The published book, executed at the notebooks' own "
                f'size, shows the real outputs: <a href="{BOOK_URL}">{BOOK_URL}</a>.</p></div>')

    def __repr__(self) -> str:
        return (f"CI-size build ({SIZE_ENV}=ci): these numbers only prove that the code runs; "
                f"the published book shows the real outputs: {BOOK_URL}")


def size_banner() -> SizeBanner | None:
    """The banner to show at the top of a notebook: a :class:`SizeBanner` at the CI size, else ``None`` (nothing is
    displayed). A notebook ends its imports cell with ``size_banner()``."""
    return SizeBanner() if ci_size() else None


def notebook_config(preset: str, dataset: str | None, model: str | None = None, *, seed: int = 0,
                    device: str | None = None, variant: str = "three-phase",
                    settings: Mapping[str, Any] | None = None,
                    cpu_defaults: Mapping[str, Any] | None = None) -> RunConfig:
    """The preset's :class:`~threephase.RunConfig` with a notebook's parameters applied.

    ``settings`` holds dotted names (``{"data.train_per_class": 16, "max_seq_length": 32}``); a ``None`` value keeps
    the preset's. With the ``cpu`` preset, ``cpu_defaults`` (e.g. :data:`SMALL`) fill the settings left ``None``;
    the ``paper`` preset ignores them, so that switching the preset alone gives the paper's settings. With
    ``$THREEPHASE_NOTEBOOK_SIZE=ci`` the ``cpu`` preset takes :data:`CI_SIZE` over ``cpu_defaults``.
    A ``ft.num_train_epochs`` below the preset's ``ft.min_epochs`` lowers that minimum too, so that a short run is
    still a valid one.
    """
    config = preset_config(preset, dataset, model, variant=variant, seed=seed, device=device)
    chosen = {key: value for key, value in (settings or {}).items() if value is not None}
    if preset == "cpu":
        chosen = {**(cpu_defaults or {}), **(CI_SIZE if ci_size() else {}), **chosen}
    config = apply_overrides(config, chosen)
    if "ft.num_train_epochs" in chosen and "ft.min_epochs" not in chosen:
        config.ft.min_epochs = min(config.ft.min_epochs, config.ft.num_train_epochs)
    return config.validate()


def cache_key(config: RunConfig, *phases: str) -> dict[str, Any]:
    """What a cached body depends on: model, length, pooling, seed, the training data and the settings of
    ``phases`` (``"dae"``, ``"cl"``; ``"cl"`` adds the imbalance settings) of a :class:`~threephase.RunConfig`."""
    data = {k: getattr(config.data, k) for k in ("dataset", "data_dir", "seed", "train_per_class",
                                                  "max_train_samples", "validation_fraction")}
    key = {"model": config.model_name_or_path, "max_seq_length": config.max_seq_length, "pooling": config.pooling,
           "seed": config.seed, "data": data}
    for phase in phases:
        key[phase] = asdict(getattr(config, phase))
        if phase == "cl":
            key["imbalance"] = asdict(config.imbalance)
    return key


def cached_body(path: str | Path, train_fn: Callable[[], tuple[Any, dict]], settings: Mapping[str, Any] | None = None):
    """Load a body saved at ``path`` when it was trained with the same ``settings``; otherwise call ``train_fn()``
    (which returns ``(body, report)``) and save the body, its report and the settings there.

    Returns ``(body, report, loaded)``, ``loaded`` True when the body came from the cache. The report (loss
    history, wall time) is kept as JSON beside the body, so that curves can be drawn either way."""
    from .models import load_body

    path = Path(path)
    settings = json.loads(json.dumps(dict(settings or {}), default=str))
    saved = path / "threephase_cache.json"
    if saved.is_file() and (path / "modules.json").is_file():
        record = json.loads(saved.read_text())
        if record.get("settings") == settings:
            return load_body(str(path)), record["report"], True
    body, report = train_fn()
    report = json.loads(json.dumps(report, default=str))
    with atomic_dir(path) as tmp:
        body.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "threephase_cache.json").write_text(json.dumps({"settings": settings, "report": report}, indent=2))
    return body, report, False


def fresh_body(config: RunConfig):
    """The untrained body of ``config``: its model with its pooling and maximum length."""
    from .models import load_body

    return load_body(config.model_name_or_path, pooling=config.pooling, max_seq_length=config.max_seq_length,
                     device=config.device)


def _cache_path(cache_dir: str | Path, config: RunConfig, phase: str) -> Path:
    name = config.data.dataset or Path(str(config.data.data_dir or "data")).stem
    return Path(cache_dir) / f"{name}-{config.seed}-{phase}"


def dae_body(config: RunConfig, data, cache_dir: str | Path):
    """The body after phase 1 / DAE on ``data["train"]``, from ``cache_dir`` or trained; ``(body, report, loaded)``."""
    from .phases import train_dae

    def train():
        body = fresh_body(config)
        return body, train_dae(body, data["train"]["text"], config.dae, seed=config.seed,
                               logging_steps=config.logging_steps, device=config.device)

    return cached_body(_cache_path(cache_dir, config, "dae"), train, cache_key(config, "dae"))


def cl_body(config: RunConfig, data, cache_dir: str | Path):
    """The body after phase 1 / DAE and phase 2 / CL, from ``cache_dir`` or trained on the (cached) phase-1 body;
    ``(body, report of phase 2, loaded)``."""
    from .phases import train_cl

    def train():
        body = dae_body(config, data, cache_dir)[0]
        return body, train_cl(body, data["train"]["text"], data["train"]["label"], config.cl, config.imbalance,
                              seed=config.seed, logging_steps=config.logging_steps, device=config.device)

    return cached_body(_cache_path(cache_dir, config, "cl"), train, cache_key(config, "dae", "cl"))


def cached_run(config: RunConfig, data=None):
    """The run folder ``config.output_dir`` when it was made with exactly ``config``; otherwise
    :func:`~threephase.run` it (replacing the folder). Returns ``(result, loaded)``: a
    :class:`~threephase.RunResult` (a loaded one reads its classifier from the folder when first used) and whether
    it came from the folder."""
    from .pipeline import run

    folder = Path(config.output_dir)
    if (folder / "metrics.json").is_file() and (folder / "config.json").is_file():
        if RunConfig.from_json_file(folder / "config.json").to_dict() == config.to_dict():
            return run(config, data=data, resume=True), True  # a finished run: resume only reads it back
    return run(config, data=data, overwrite=True), False


def ft_summary(report: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One row about a phase 3 / FT run: its epochs, best validation epoch and scores, test scores and seconds.

    ``report`` is what :func:`~threephase.train_ft` returns, ``metrics`` the test
    :func:`~threephase.records.classification_metrics`."""
    best = next(e for e in report["epochs"] if e["epoch"] == report["best_epoch"])
    return {"epochs": len(report["epochs"]), "best epoch": report["best_epoch"],
            "validation accuracy": best["validation_accuracy"], "validation macro F1": best["validation_macro_f1"],
            "test accuracy": metrics["accuracy"],
            "test macro F1": metrics["macro_f1"], "seconds": report["wall_time_s"]}


# Where a run ran and under which folder, not what it computed: left out of a runs file and of the comparison.
WHERE = ("output_dir", "device")


def _what(config: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key not in WHERE}


def _computed(config: Mapping[str, Any], precision: str) -> str:
    """What a run computed, as a key: its settings less where it ran, with the precision it resolved to."""
    return json.dumps(_what(config) | {"precision": precision}, sort_keys=True)


def recorded_precision(entry: Mapping[str, Any]) -> str:
    """The precision a saved run computed in: what its record says, else what ``auto`` meant before the setting
    existed (fp32, unless its phases' ``training_args`` asked the trainer for bf16 or fp16). Runs are matched on it
    rather than on the setting, since ``auto`` means bf16 on one machine and fp32 on another."""
    if "precision" in entry["record"]:
        return entry["record"]["precision"]
    asked = {key for phase in ("dae", "cl", "ft") for key, on in entry["config"].get(phase, {}).get(
        "training_args", {}).items() if on and key in ("bf16", "fp16")}
    return asked.pop() if len(asked) == 1 else "fp32"


def save_runs(out: str | os.PathLike, path: str | os.PathLike) -> int:
    """Write the finished runs under ``out`` (``<out>/runs/*/`` holding ``config.json`` and ``results.json``, as
    ``reproduce`` and ``experiment`` leave them) to ``path``, one JSON line ``{"config": ..., "record": ...}`` per
    run, without their folders' paths; return how many. :func:`saved_runs` reads the file back."""
    from .records import atomic_write_text

    lines = []
    for results in sorted(Path(out).glob("runs/*/results.json")):
        config = json.loads((results.parent / "config.json").read_text())
        record = json.loads(results.read_text())
        record["parameters"] = _what(record.get("parameters", {}))
        lines.append(json.dumps({"config": _what(config), "record": record}, sort_keys=True))
    if not lines:
        raise ThreePhaseError(f"No finished runs under {str(out)!r} (<out>/runs/*/results.json): run them first.")
    atomic_write_text(Path(path), "\n".join(lines) + "\n")
    return len(lines)


def saved_runs(path: str | os.PathLike | Sequence[str | os.PathLike],
               configs: list[RunConfig]) -> list[dict[str, Any] | None]:
    """For each of ``configs``, its saved record from the file(s) :func:`save_runs` wrote, or ``None`` where no file
    holds a run made with exactly that config (compared whole, except for where it ran: ``output_dir``, ``device``;
    and in the precision ``auto`` means here, so give one file per precision), so that the caller trains that one.
    Prints how many were found."""
    paths = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
    saved = [json.loads(line) for p in paths if p.is_file() for line in p.read_text().splitlines() if line.strip()]
    by_settings = {_computed(entry["config"], recorded_precision(entry)): entry["record"] for entry in saved}
    records = [by_settings.get(_computed(config.to_dict(), resolve_precision(config.precision, config.device)))
               for config in configs]
    found = sum(record is not None for record in records)
    present = [p.name for p in paths if p.is_file()]
    where = f"in {', '.join(present)}" if present else f"(no file at {', '.join(repr(str(p)) for p in paths)})"
    print(f"{found} of {len(configs)} runs saved {where} with these settings"
          + (f"; training the other {len(configs) - found}" if found < len(configs) else ""))
    return records
