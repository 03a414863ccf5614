"""The answers of the "When do the phases help?" experiment, from its runs file alone.

:func:`answer` turns the run records into one row per declared comparison (:data:`~threephase.grid.settings.QUESTIONS`)
and metric, with :func:`threephase.stats.verdicts`'s columns: the paired difference in points, its interval over
data draws, Holm's p within the question's family, the TOST at ±:data:`~threephase.grid.settings.MARGIN`, the mde and
the verdict. :func:`write_summary` writes the files the book includes: ``phases_help.md`` / ``.csv`` (the answers),
``phases_help_findings.md`` (a sentence per comparison), ``phases_help_summary.md`` (the verdicts counted), ``phases_help.png`` (the forest plot),
``phases_help_design.md`` (each setting's draws, seeds and real training sizes), ``phases_help_long_tail.png`` and
``phases_help_paper.md`` (full sst5 beside the paper's Table 3), and ``phases_help_tuning.md`` when phase 3 was
searched (:func:`tuning_table`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ThreePhaseError
from ..records import atomic_write_text, write_figure
from ..stats import VERDICT_COLUMNS, holm, mean_interval, verdict, verdict_sentence, verdicts
from .forest import draws_figure, forest
from .settings import ALPHA, MARGIN, POWER, QUESTIONS, SETTINGS, TARGET_MDE
from .tables import PAPER_TABLE3, TABLE3_VARIANTS

RUNS_FILE = "phases_help_runs.jsonl"
METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
COLUMNS = ["question", "question_title", "setting", "dataset", "baseline_setting"] + VERDICT_COLUMNS


def read_runs(out: str | os.PathLike) -> dict[tuple[str, str], dict]:
    """The runs file of ``<out>``, keyed by (setting, run name); {} when there is none yet."""
    path = Path(out) / RUNS_FILE
    if not path.is_file():
        return {}
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(e["setting"], e["name"]): e for e in entries}


def records_by_setting(entries: dict[tuple[str, str], dict]) -> dict[str, list[dict]]:
    """Each setting's run records (``results.json`` dicts)."""
    found: dict[str, list[dict]] = {}
    for (setting, _), entry in sorted(entries.items()):
        found.setdefault(setting, []).append(entry["record"])
    return found


def _side(records: dict[str, list[dict]], setting: str, dataset: str, variant: str, as_name: str) -> list[dict]:
    return [{**r, "variant": as_name} for r in records.get(setting, [])
            if r["dataset"] == dataset and r["variant"] == variant]


def answer(records: dict[str, list[dict]], metrics=tuple(METRICS)) -> pd.DataFrame:
    """One row per (question, comparison, metric), in :data:`COLUMNS`. Holm runs over each question's declared
    family, per metric; a comparison without runs yet counts in the family with p = 1, so that the correction is as
    strict before every setting has run as after."""
    rows = []
    for key, question in QUESTIONS.items():
        for metric in metrics:
            family = []
            for setting, dataset, variant, base_setting, baseline in question.comparisons:
                recs = _side(records, setting, dataset, variant, "variant") + \
                    _side(records, base_setting, dataset, baseline, "baseline")
                row = verdicts(recs, [("variant", "baseline")], metric=metric, margin=MARGIN, alpha=ALPHA,
                               power=POWER).iloc[0].to_dict()
                family.append({**row, "question": key, "question_title": question.title, "setting": setting,
                               "dataset": dataset, "baseline_setting": base_setting, "variant": variant,
                               "baseline": baseline})
            adjusted = holm([1.0 if math.isnan(r["p_value"]) else r["p_value"] for r in family])
            for r, p in zip(family, adjusted):
                r["p_holm"] = math.nan if math.isnan(r["p_value"]) else p
                r["verdict"] = verdict(r, ALPHA)
            rows += family
    return pd.DataFrame(rows, columns=COLUMNS)


def _interval(row) -> str:
    if not math.isfinite(row["diff"]):
        return "not run yet"
    if not math.isfinite(row["ci_low"]):
        return f"{row['diff']:+.1f}"
    return f"{row['diff']:+.1f} [{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]"


def _num(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "–"


def to_markdown(df: pd.DataFrame) -> str:
    """One table per question, narrow enough for the book's text column: each comparison's accuracy difference with
    its 95% interval, the mde, the draws × seeds, Holm's p, the TOST p and the verdict."""
    lines = []
    acc = df[df["metric"] == "accuracy"]
    for key, group in acc.groupby("question", sort=False):
        lines += [f"**{key}. {group['question_title'].iloc[0]}** (one Holm family of {len(group)})", "",
                  "| comparison | accuracy diff [95% CI] | mde | draws × seeds | p Holm / TOST | verdict |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for _, r in group.iterrows():
            where = r["setting"] if r["setting"] == r["baseline_setting"] else f"{r['setting']} vs {r['baseline_setting']}"
            lines.append(f"| {r['variant']} vs {r['baseline']} ({where}, {r['dataset']}) | {_interval(r)} | "
                         f"{_num(r['mde'])} | {r['draws']} × {r['seeds']} | {_num(r['p_holm'], 3)} / "
                         f"{_num(r['tost_p'], 3)} | {r['verdict'] if r['pairs'] else '–'} |")
        lines.append("")
    lines.append(f"Differences in points of test accuracy, paired on (data draw, seed); the interval, the tests and "
                 f"the mde (the smallest difference detected with {POWER:.0%} power at α = {ALPHA}) are over draws "
                 f"(seeds averaged within each) where a setting has ≥ 2 draws, over seeds otherwise. Equivalence margin "
                 f"±{MARGIN:g} points. The CSV adds sd_draw and sd_seed (the standard deviations of the paired "
                 f"differences between draws and between seeds within a draw, by a one-way random-effects ANOVA) and "
                 f"the same answers for macro-F1.")
    return "\n".join(lines) + "\n"


def _done(name: str, recs: list[dict]) -> str:
    """How much of a setting's declared design its records cover: draws and seeds run of those declared."""
    setting = SETTINGS[name]
    declared = min(setting.draws, setting.max_draws or setting.draws)
    draws, seeds = len({r.get("data_seed") for r in recs}), len({r["seed"] for r in recs})
    return f"{draws} of {declared} draws × {seeds} of {setting.seeds} seeds"


def findings(df: pd.DataFrame, records: dict[str, list[dict]]) -> str:
    """The chapter's sentences: which settings have run, then one :func:`~threephase.stats.verdict_sentence` per
    accuracy comparison, by question."""
    lines = []
    missing = [name for name in SETTINGS if not records.get(name)]
    ran = [f"{name} ({len(records[name])} runs: {_done(name, records[name])})" for name in SETTINGS if records.get(name)]
    lines.append(f"- **Run so far under this design:** {', '.join(ran) or 'nothing yet'}. "
                 f"**Not run yet:** {', '.join(missing) or 'none'}.")
    acc = df[df["metric"] == "accuracy"]
    for key, group in acc.groupby("question", sort=False):
        lines.append(f"- **{key}. {group['question_title'].iloc[0]}**")
        for _, r in group.iterrows():
            target = TARGET_MDE.get(r["setting"], 2.0)
            sentence = verdict_sentence(r, target=target, power=POWER, alpha=ALPHA)
            lines.append(f"  - ({r['setting']}, {r['dataset']}) {sentence}")
    return "\n".join(lines) + "\n"


def summary(df: pd.DataFrame, records: dict[str, list[dict]]) -> str:
    """The chapter's box: per question, how many accuracy comparisons got each verdict and how many have not run."""
    lines = []
    acc = df[df["metric"] == "accuracy"]
    for key, group in acc.groupby("question", sort=False):
        ran = group[group["pairs"] > 0]
        counts = ", ".join(f"{(ran['verdict'] == v).sum()} {v}" for v in ("better", "worse", "equivalent", "undecided"))
        waiting = len(group) - len(ran)
        lines.append(f"- **{key}. {group['question_title'].iloc[0]}** Of {len(group)} comparison"
                     f"{'s' * (len(group) != 1)}, {waiting} {'has' if waiting == 1 else 'have'} not run yet"
                     + (f"; of the others: {counts}." if len(ran) else "."))
    runs = sum(len(r) for r in records.values())
    lines.append(f"- The runs file holds {runs} runs of this design.")
    return "\n".join(lines) + "\n"


def design(records: dict[str, list[dict]]) -> str:
    """The declared questions and margin, and each setting's default draws × seeds and its training sizes as they
    ran (from the records): what the book states."""
    lines = [f"Equivalence margin ±{MARGIN:g} points of accuracy; α = {ALPHA} (Holm within each question, TOST "
             f"uncorrected); power {POWER:.0%} for the mde.", "", "| question | its family (variant vs baseline) |",
             "| --- | --- |"]
    for key, question in QUESTIONS.items():
        compared = "; ".join(f"{v} vs {b} ({s}{'' if s == bs else ' vs ' + bs}, {d})"
                             for s, d, v, bs, b in question.comparisons)
        lines.append(f"| {key}. {question.title} | {compared} |")
    lines += ["", "| setting | draws × seeds (default) | variants |", "| --- | --- | --- |"]
    for name, setting in SETTINGS.items():
        lines.append(f"| {name}: {setting.title} | {setting.draws} × {setting.seeds} | {', '.join(setting.variants)} |")
    lines += ["", "As run (from the records; the class sizes of a setting's first run):", "",
              "| setting, data | draws × seeds (runs) | training examples: class sizes, largest / smallest |",
              "| --- | --- | --- |"]
    for name in SETTINGS:
        recs = records.get(name, [])
        for dataset in SETTINGS[name].datasets:
            own = [r for r in recs if r["dataset"] == dataset]
            if not own:
                lines.append(f"| {name}, {dataset} | not run yet | |")
                continue
            sizes = sorted(own[0]["class_sizes"].values(), reverse=True)
            draws, seeds = len({r.get("data_seed") for r in own}), len({r["seed"] for r in own})
            lines.append(f"| {name}, {dataset} | {draws} × {seeds} ({len(own)}) | {sum(sizes)}: "
                         f"{'/'.join(map(str, sizes))}, ratio {sizes[0] / sizes[-1]:.2f} |")
    return "\n".join(lines) + "\n"


def paper_table(records: dict[str, list[dict]]) -> str:
    """full-sst5 beside the paper's Table 3 row for sst5 (all-MiniLM-L12-v2, the paper's preset, on its side;
    all-MiniLM-L6-v2 with the cpu preset here)."""
    paper = dict(zip(TABLE3_VARIANTS, PAPER_TABLE3[("sst5", "minilm")]))
    recs = [r for r in records.get("full-sst5", []) if r["dataset"] == "sst5"]
    lines = ["| variant | here: all-MiniLM-L6-v2, cpu preset (mean [95% CI], seeds) | paper: all-MiniLM-L12-v2 | "
             "paper − its FT |", "| --- | --- | --- | --- |"]
    for variant in TABLE3_VARIANTS:
        scores = [100 * r["accuracy"] for r in recs if r["variant"] == variant]
        mean, low, high = mean_interval(scores)
        here = "not run yet" if not scores else (
            f"{mean:.2f}" + ("" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]") + f", {len(scores)} seed" + "s" * (len(scores) != 1))
        lines.append(f"| {variant} | {here} | {paper[variant]:.2f} | {paper[variant] - paper['ft']:+.2f} |")
    trains = sorted({r.get("split_sizes", {}).get("train") for r in recs} - {None})
    lines += ["", f"Test accuracy (%) on sst5's full test split. Training examples here: "
              f"{', '.join(map(str, trains)) or 'no run yet'}. The paper's numbers are its Table 3 for all-MiniLM-L12-"
              "v2 with its own budget on a GPU; this row uses the smaller all-MiniLM-L6-v2 and the cpu preset, so "
              "the two columns are not the same experiment: compare the gaps to FT, not the levels."]
    timed = [r for r in recs if "wall_time_s" in r]  # a record of an older threephase may hold no timings
    if timed:
        lines += ["", _cost(timed)]
    return "\n".join(lines) + "\n"


def _machine(device: Any) -> str:
    """A record's device in words: ``cpu, 2 cores`` (a record holds the device, its core count and the world size)."""
    if not isinstance(device, dict):
        return str(device or "?")
    cores = f", {device['cpu_count']} cores" if device.get("device") == "cpu" and device.get("cpu_count") else ""
    return f"{device.get('device', '?')}{cores}"


def _cost(recs: list[dict]) -> str:
    """What one full-data run cost where it ran, per variant: its wall time, per phase, and phase 3's epochs."""
    parts = []
    for variant in dict.fromkeys(r["variant"] for r in recs):
        own = [r for r in recs if r["variant"] == variant]
        phases = ", ".join(f"{name.upper()} {np.mean([r['phases'][name]['wall_time_s'] for r in own]) / 60:.0f}"
                           for name in ("dae", "cl", "ft") if all(name in r.get("phases", {}) for r in own))
        epochs = sorted({len(r["phases"]["ft"]["epochs"]) for r in own if "ft" in r.get("phases", {})})
        span = "-".join(map(str, dict.fromkeys([epochs[0], epochs[-1]]))) if epochs else "?"
        parts.append(f"{variant} {np.mean([r['wall_time_s'] for r in own]) / 60:.0f} min ({phases}; phase 3 "
                     f"stopped after {span} epochs)")
    where = ", ".join(sorted({f"{_machine(r.get('device'))} in {r.get('precision', '?')}" for r in recs}))
    return (f"What a run cost ({where}, mean wall time per run as recorded, in minutes): " + "; ".join(parts) + ".")


def long_tail_sizes(records: dict[str, list[dict]]) -> pd.DataFrame:
    """The long tail's class sizes per data draw (rows): from the records once it has run, before that from the data
    (the default draws, as the runs will load them)."""
    recs = {r.get("data_seed"): r["class_sizes"] for r in records.get("long-tail", [])}
    if not recs:  # the whole training split loaded once, then the tail of each draw as load_data draws it
        from ..data import load_data
        from ..sampling import long_tail

        setting = SETTINGS["long-tail"]
        data = load_data(dataset=setting.datasets[0], max_validation_samples=16, max_test_samples=16)["train"]
        frame, names = data.to_pandas(), data.features["label"].names
        factor, total = setting.overrides["data.imbalance_factor"], setting.overrides["data.max_train_samples"]
        recs = {draw: {names[i]: int(n) for i, n in
                       long_tail(frame, factor, draw, total)["label"].value_counts().sort_index().items()}
                for draw in range(setting.draws)}
    return pd.DataFrame.from_dict(recs, orient="index").sort_index()


TUNING_FOLDER = "phases_help_tuning"  # <out>/phases_help_tuning/<variant>/: what `search --out` wrote (trials.csv)


def _validation_score(record: dict, metric: str) -> float:
    ft = record["phases"]["ft"]
    return next(e[f"validation_{metric}"] for e in ft["epochs"] if e["epoch"] == ft["best_epoch"])


def tuning_table(out: str | os.PathLike, records: dict[str, list[dict]], metric: str = "macro_f1") -> str | None:
    """Is the shared recipe fair? For each variant searched on the long tail's first draw (``search --seed 0 --set
    data.seed=0``, its studies copied into ``<out>/phases_help_tuning/<variant>/``): the shared recipe's validation
    score in the same draw and seed against the best of the search's trials. None when nothing was searched."""
    folder = Path(out) / TUNING_FOLDER
    studies = sorted(p for p in folder.glob("*/trials.csv")) if folder.is_dir() else []
    if not studies:
        return None
    lines = [f"| method | shared recipe: validation {METRICS[metric]} | tuned: best trial | trials (pruned) | "
             "the best trial's phase 3 |", "| --- | --- | --- | --- | --- |"]
    for path in studies:
        variant, trials = path.parent.name, pd.read_csv(path)
        done = trials[trials["state"] == "COMPLETE"]
        shared = [r for r in records.get("long-tail", [])
                  if r["variant"] == variant and r.get("data_seed") == 0 and r["seed"] == 0]
        here = f"{100 * _validation_score(shared[0], metric):.1f}" if shared else "not run yet"
        if done.empty:
            lines.append(f"| {variant} | {here} | no trial completed | {len(trials)} | |")
            continue
        best = done.loc[done["value"].idxmax()]
        params = ", ".join(f"{c[len('params_'):]} = " + ("none" if pd.isna(best[c]) else f"{best[c]:.3g}"
                                                           if isinstance(best[c], float) else f"{best[c]}")
                           for c in trials.columns if c.startswith("params_"))
        pruned = int((trials["state"] == "PRUNED").sum())
        lines.append(f"| {variant} | {here} | {100 * best['value']:.1f} | {len(trials)} ({pruned}) | {params} |")
    return "\n".join(lines) + "\n"


def write_summary(out: str | os.PathLike) -> pd.DataFrame:
    """Write the chapter's files into ``<out>`` (atomically) from ``<out>/phases_help_runs.jsonl``; comparisons
    without runs read "not run yet"."""
    out = Path(out)
    entries = read_runs(out)
    if not (out / RUNS_FILE).is_file():  # an empty file is a design with no runs yet: its files say so
        raise ThreePhaseError(f"No {RUNS_FILE} in {str(out)!r}: run the experiment first (it writes the file), or "
                              "point --out at the folder that holds it.")
    records = records_by_setting(entries)
    df = answer(records)
    atomic_write_text(out / "phases_help.md", to_markdown(df))
    atomic_write_text(out / "phases_help.csv", df.round(4).to_csv(index=False))
    atomic_write_text(out / "phases_help_findings.md", findings(df, records))
    atomic_write_text(out / "phases_help_design.md", design(records))
    atomic_write_text(out / "phases_help_summary.md", summary(df, records))
    atomic_write_text(out / "phases_help_paper.md", paper_table(records))
    if (tuned := tuning_table(out, records)) is not None:
        atomic_write_text(out / "phases_help_tuning.md", tuned)
    write_figure(out / "phases_help.png", forest(df), dpi=150)
    write_figure(out / "phases_help_long_tail.png", draws_figure(long_tail_sizes(records)), dpi=150)
    return df
