"""``compare``: the plan (draws, seeds, the methods and their settings), the refusals before any training, the
report (a verdict per method, failed runs in the table) and, once, the issue's own command end to end on a small
CSV folder it has never seen."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from threephase.cli import main
from threephase.errors import ThreePhaseError
from threephase.grid import compare as compare_module
from threephase.grid.compare import check_compare, compare, plan_compare, run_compare
from threephase.grid.compare_report import FILES, compare_table, to_markdown

# The run shrunk to a few optimizer steps per phase: the command is the issue's, the training is CI's.
TINY = ["max_seq_length=16", "dae.num_train_epochs=1", "cl.pair_multiplier=1", "ft.num_train_epochs=1",
        "ft.min_epochs=1", "ft.patience=1"]


@pytest.fixture
def csv_folder(tmp_path, data_dir) -> Path:
    """Two snips2 intents as a CSV folder the library has never seen: 20 training rows per class (so that 16 per
    class differ between draws), 4 validation and 6 test rows per class, with text labels."""
    folder = tmp_path / "my_data"
    folder.mkdir()
    for split, rows in (("train", 20), ("validation", 4), ("test", 6)):
        frame = pd.read_csv(Path(data_dir) / "snips2" / f"{split}.csv")
        frame = frame[frame["label"] < 2].groupby("label").head(rows)
        names = {0: "playlist", 1: "restaurant"}
        frame.assign(label=frame["label"].map(names)).to_csv(folder / f"{split}.csv", index=False)
    return folder


def test_plan_runs_every_method_with_ft_on_each_draw_and_seed(tmp_path):
    plan = plan_compare(data_dir=str(tmp_path), variants="three-phase,logreg", draws=3, seeds=2, train_per_class=8)
    assert plan.variants == ["three-phase", "logreg", "ft"]  # ft joins as the baseline
    assert (plan.draws, plan.seeds) == ([0, 1, 2], [0, 1])
    groups = list(plan.groups(2))
    assert len(groups) == 1  # one grid per draw while the methods share their settings
    overrides, cells = groups[0]
    assert overrides["data.seed"] == 2 and overrides["data.train_per_class"] == 8
    assert overrides["data.data_dir"] == str(tmp_path.resolve())
    assert {(c["variant"], c["seed"]) for c in cells} == {(v, s) for v in plan.variants for s in (0, 1)}
    # Without a subsample, the whole training split: the cpu preset's cap is cleared, not kept.
    config = plan_compare(data_dir=str(tmp_path), variants="ft,logreg").config("ft", 0, tmp_path)
    assert config.data.max_train_samples is None and config.data.train_per_class is None
    assert plan.config("logreg", 1, tmp_path).data.seed == 1
    # Searched settings are a method's own: it then runs as a grid of its own.
    plan.tuned["three-phase"] = {"ft.learning_rate": 3e-4}
    groups = list(plan.groups(0))
    assert sorted(len(cells) for _, cells in groups) == [2, 4]
    assert plan.config("three-phase", 0, tmp_path).ft.learning_rate == 3e-4
    assert plan.config("ft", 0, tmp_path).ft.learning_rate != 3e-4


@pytest.mark.parametrize("options, message", [
    ({"variants": "three-phase,fine-tune"}, "Unknown method 'fine-tune'"),
    ({"variants": "ft"}, "compares nothing"),
    ({"draws": 0}, "--draws 0"),
    ({"train_per_class": 0}, "--train-per-class 0"),
    ({"settings": {"data.seed": 3}}, "drop --set data.seed"),
    ({"preset": "gpu"}, "Unknown preset 'gpu'"),
    ({"seeds": "two"}, "Cannot read --seeds 'two'"),
])
def test_bad_options_are_refused_by_name(options, message, tmp_path):
    with pytest.raises(ThreePhaseError, match=message):
        plan_compare(data_dir=str(tmp_path), **{"variants": "three-phase,ft", **options})


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("nothing may train before the input is checked")

    monkeypatch.setattr("threephase.pipeline.run", refuse)


@pytest.mark.parametrize("case, message", [
    ("label column", "has no column 'intent'"),
    ("same draws", "every draw trains on the same 40 examples .of the training split's 40.*Pass --train-per-class"),
    ("out is a file", "is a file, not a folder"),
    ("margin", "--margin -1"),
    ("set typo", "Unknown setting 'ft.learnin_rate'"),
    ("training args", "TrainingArguments does not know: bf17"),
])
def test_bad_input_is_refused_before_anything_trains(case, message, csv_folder, tmp_path, no_training):
    options = {"variants": "three-phase,ft", "train_per_class": 16, "out": tmp_path / "out"}
    options.update({"label column": {"label_column": "intent"}, "same draws": {"train_per_class": None, "draws": 2},
                    "out is a file": {"out": csv_folder / "train.csv"}, "margin": {"margin": -1},
                    "set typo": {"settings": {"ft.learnin_rate": 1}},
                    "training args": {"settings": {"ft.training_args.bf17": True}}}[case])
    with pytest.raises(ThreePhaseError, match=message):
        compare(str(csv_folder), **options)
    assert not (tmp_path / "out").exists()


def test_a_failed_run_is_its_method_s_line(tmp_path, monkeypatch):
    plan = plan_compare(data_dir=str(tmp_path), variants="three-phase,ft,logreg", draws=2, seeds=1)
    lines = {0: ["data__all-MiniLM-L6-v2__logreg__draw0__seed0 (ValueError: bad; see log)"], 1: []}
    monkeypatch.setattr(compare_module, "run_grid", lambda cells, out, *a, **k: lines[cells[0]["draw"]])
    assert run_compare(plan, tmp_path) == {"logreg": lines[0]}


def fake_run(fail: str | None = None, calls: list | None = None):
    """A stand-in for :func:`threephase.run`: a score per (draw, seed) that every method shares, three-phase about 6
    points above it (±1 per draw), logreg about level (±2), and a ValueError for the method ``fail``."""
    def run(config, overwrite=False, resume=False, **options):  # a search's trials pass data and evaluate_test
        if calls is not None:
            calls.append((config.variant, config.data.seed, config.seed))
        if config.variant == fail:
            raise ValueError(f"{fail} broke")
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)  # a run folder, as run() leaves it
        (Path(config.output_dir) / "config.json").write_text(json.dumps(config.to_dict()))
        noise = random.Random(f"{config.data.seed}-{config.seed}").uniform(-0.05, 0.05)
        jitter = random.Random(f"{config.variant}-{config.data.seed}").uniform(-0.01, 0.01)
        score = 0.7 + noise + {"three-phase": 0.06 + jitter, "logreg": 2 * jitter}.get(config.variant, 0.0)
        score -= abs(config.ft.learning_rate - 3e-4)  # a search on ft.learning_rate has something to find
        return SimpleNamespace(metrics={
            "accuracy": score, "macro_f1": score - 0.01, "variant": config.variant, "seed": config.seed,
            "data_seed": config.data.seed, "dataset": config.data.data_dir, "model": config.model_name_or_path,
            "wall_time_s": 3.0, "split_sizes": {"train": 48, "validation": 12, "test": 18},
            "label_names": ["playlist", "restaurant", "weather"]})
    return run


def test_compare_writes_a_verdict_per_method_and_reports_a_failed_method(csv_folder, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("threephase.pipeline.run", fake_run(fail="joint", calls=calls))
    out = tmp_path / "out"
    df = compare(str(csv_folder), variants="three-phase,joint,ft,logreg", draws=4, seeds=2, train_per_class=16,
                 out=out)
    assert len(calls) == 4 * 4 * 2 and {(d, s) for _, d, s in calls} == {(d, s) for d in range(4) for s in (0, 1)}
    assert all((out / name).stat().st_size > 0 for name in FILES)
    assert set(df["metric"]) == {"accuracy", "macro_f1"} and set(df["variant"]) == {"three-phase", "joint", "logreg"}
    rows = df[df["metric"] == "accuracy"].set_index("variant")
    assert rows.loc["three-phase", "verdict"] == "better"  # +6 points on every pair
    assert rows.loc["three-phase", "diff"] == pytest.approx(6.0, abs=1.0)
    assert rows.loc["joint", "verdict"] == "failed" and rows.loc["joint", "failed"] == 8
    assert rows.loc["joint", "runs"] == 0 and rows.loc["logreg", "runs"] == 8 == rows.loc["logreg", "planned"]
    assert rows.loc["logreg", "seconds"] == pytest.approx(24.0)
    report = (out / "compare.md").read_text()
    assert "joint broke" in report and "## Failed runs" in report
    assert all(sentence in report for sentence in df["sentence"])
    assert "4 draw(s) × 2 seed(s)" in report and "16 training examples per class" in report
    assert len((out / "compare_runs.jsonl").read_text().splitlines()) == 3 * 8
    # A rerun trains only what failed, and writes the same table.
    calls.clear()
    table = (out / "compare.csv").read_text()
    compare(str(csv_folder), variants="three-phase,joint,ft,logreg", draws=4, seeds=2, train_per_class=16, out=out)
    assert {variant for variant, _, _ in calls} == {"joint"}
    assert (out / "compare.csv").read_text() == table


def test_the_command_line_reports_the_failure_after_the_table(csv_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("threephase.pipeline.run", fake_run(fail="logreg"))
    out = tmp_path / "out"
    code = main(["compare", "--data-dir", str(csv_folder), "--variants", "three-phase,ft,logreg", "--draws", "3",
                 "--train-per-class", "16", "--out", str(out)])
    printed = capsys.readouterr()
    # The command ends on one clear error (each run's traceback stays in its log), after writing the report.
    assert code == 2 and printed.err.strip().splitlines()[-1].startswith("threephase: error: 3 run(s) failed")
    assert (out / "compare.md").is_file() and "logreg broke" in (out / "compare.md").read_text()


def test_markdown_lists_ft_first_then_each_method_with_its_verdict():
    records = [{"variant": v, "seed": s, "data_seed": d, "accuracy": a / 100, "macro_f1": a / 100 - 0.02,
                "wall_time_s": 10.0} for d in range(3) for s in range(2)
               for v, a in (("ft", 80 + d + s), ("three-phase", 80 + d + s + 0.1 * (d - 1)), ("logreg", 60 + d * d + s))]
    df = compare_table(records, ["three-phase", "ft", "logreg"], planned=6)
    text = to_markdown(df, "about the data")
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [line.split(" | ")[0] for line in table] == ["| FT (baseline)", "| 3-Phase", "| LogReg"]
    assert df.set_index(["variant", "metric"]).loc[("logreg", "accuracy"), "verdict"] == "worse"
    assert "6 of 6" in table[1] and "10 s" in table[1]


@pytest.mark.slow
def test_the_issue_s_command_on_a_csv_folder_it_has_never_seen(csv_folder, tmp_path, monkeypatch, capsys):
    """The done-when of issue 22, as typed there, with the training shrunk through --set."""
    monkeypatch.delenv("THREEPHASE_DATA_DIR", raising=False)
    out = tmp_path / "OUT"
    args = ["compare", "--data-dir", str(csv_folder), "--variants", "three-phase,ft,logreg", "--draws", "2",
            "--seeds", "1", "--train-per-class", "16", "--out", str(out), "--device", "cpu"]
    args += [item for setting in TINY for item in ("--set", setting)]
    assert main(args) == 0
    assert all((out / name).stat().st_size > 0 for name in FILES)
    df = pd.read_csv(out / "compare.csv")
    assert sorted(df["variant"]) == sorted(["three-phase", "logreg"] * 2)
    assert set(df["verdict"]) <= {"better", "worse", "equivalent", "undecided"}
    runs = [json.loads(line)["record"] for line in (out / "compare_runs.jsonl").read_text().splitlines()]
    assert sorted((r["variant"], r["data_seed"]) for r in runs) == sorted(
        (v, d) for v in ("three-phase", "ft", "logreg") for d in (0, 1))
    assert all(r["split_sizes"]["train"] == 2 * 16 for r in runs)
    train = {d: json.loads((out / "runs" / f"data__all-MiniLM-L6-v2__ft__draw{d}__seed0" / "metrics.json").read_text())
             for d in (0, 1)}
    assert train[0]["data_fingerprint"]["train"] != train[1]["data_fingerprint"]["train"]  # a new draw
    capsys.readouterr()
    table = (out / "compare.csv").read_text()
    assert main(args) == 0  # rerun: trains nothing, writes the same table
    printed = capsys.readouterr()
    assert "skipped" in printed.out + printed.err and " ran " not in printed.out + printed.err
    assert (out / "compare.csv").read_text() == table


def test_search_tunes_every_method_with_the_same_trials_then_compares_with_the_best(csv_folder, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("threephase.pipeline.run", fake_run(calls=calls))
    out = tmp_path / "out"
    options = dict(variants="three-phase,ft,logreg", draws=3, train_per_class=16, out=out, search_trials=2)
    df = compare(str(csv_folder), **options)
    searched = [call for call in calls if call[1:] == (0, 0)]
    assert len(calls) == 3 * 2 + 3 * 3 and len(searched) >= 3 * 2  # 2 trials each on the first draw and seed
    for variant in ("three-phase", "ft", "logreg"):
        best = json.loads((out / "search" / variant / "best_config.json").read_text())
        record = json.loads(next((out / "runs").glob(f"*__{variant}__draw1__seed0/results.json")).read_text())
        tuned = {k: v for k, v in best.items() if k not in ("variant", "preset", "data.dataset", "model_name_or_path")}
        assert tuned and {k: record["parameters"]["overrides"][k] for k in tuned} == tuned
    assert "tuned on validation (2 Optuna trials each" in (out / "compare.md").read_text()
    assert len(df) == 4
    calls.clear()  # a rerun finds every study complete and every run finished: nothing trains
    compare(str(csv_folder), **options)
    assert calls == []


def test_executor_options_are_checked_like_experiment_s(csv_folder, tmp_path, capsys):
    code = main(["compare", "--data-dir", str(csv_folder), "--out", str(tmp_path / "out"), "--executor", "local",
                 "--jobs", "2"])
    assert code == 2 and "drop --jobs" in capsys.readouterr().err


def test_when_ft_fails_every_verdict_says_so(csv_folder, tmp_path, monkeypatch):
    monkeypatch.setattr("threephase.pipeline.run", fake_run(fail="ft"))
    df = compare(str(csv_folder), variants="three-phase,ft", draws=2, train_per_class=16, out=tmp_path / "out")
    assert list(df["verdict"]) == ["failed", "failed"] and df.attrs["failed"]
    assert "FT, the baseline, finished no run" in (tmp_path / "out" / "compare.md").read_text()
