"""The "When do the phases help?" experiment: its design (draws × seeds, declared questions), its answers from the
runs file, and its smallest form end to end (what CI runs; the book's files come from the full command)."""

import json
import math

import pandas as pd
import pytest

from threephase import ThreePhaseError, load_data
from threephase.cli import main
from threephase.config import CLConfig, ImbalanceConfig
from threephase.data import class_sizes
from threephase.grid.experiment import plan
from threephase.grid.report import answer, findings, to_markdown
from threephase.grid.settings import LONG_TAIL, MARGIN, QUESTIONS, SETTINGS
from threephase.phases import pair_dataset
from threephase.stats import holm


def test_plan_pairs_every_method_on_the_same_draws_and_seeds(data_dir, monkeypatch):
    monkeypatch.setenv("THREEPHASE_DATA_DIR", str(data_dir))
    grid = plan(settings=["long-tail-equal-pairs", "few-shot", "full-sst5"], draws=2, seeds=3)
    for name, cells in grid.cells.items():
        by_variant = {}
        for c in cells:
            by_variant.setdefault(c["variant"], set()).add((c["dataset"], c["draw"], c["seed"]))
        assert len({frozenset(v) for v in by_variant.values()}) == 1, name  # the same (draw, seed) for every method
    few = dict(((d, w), o) for (d, w), o in zip(grid.group_overrides["few-shot"], grid.groups("few-shot")))
    assert sorted(grid.group_overrides["few-shot"]) == [("snips2", 0), ("snips2", 1), ("sst2", 0), ("sst2", 1)]
    sst2 = {**grid.overrides["few-shot"], **grid.group_overrides["few-shot"]["sst2", 1]}
    assert sst2["data.seed"] == 1 and sst2["data.train_per_class"] == sst2["data.validation_per_class"] == 32
    assert {**grid.overrides["few-shot"], **grid.group_overrides["few-shot"]["snips2", 0]}[
        "data.train_per_class"] == 8 and few
    # The draws run outermost, so a setting stopped half-way holds whole draws.
    assert [cells[0]["draw"] for _, cells in grid.groups("few-shot")] == [0, 0, 1, 1]
    # full-sst5 has one draw whatever --draws says, the full splits, and no experiment-size budget.
    assert {c["draw"] for c in grid.cells["full-sst5"]} == {0}
    full = grid.overrides["full-sst5"]
    assert full["data.max_train_samples"] is None and "max_seq_length" not in full and "cl.pair_multiplier" not in full
    # The resize at equal steps: every variant of the draw trains three-phase's pair count; ft is not needed there.
    counts = {o["cl.num_pairs"] for o in grid.group_overrides["long-tail-equal-pairs"].values()}
    assert len(counts) == 1 and counts.pop() > 0
    assert {c["variant"] for c in grid.cells["long-tail-equal-pairs"]} == {"three-phase", "extra-imb", "no-imb"}
    # Defaults come from each setting; --variants keeps the baselines its comparisons need.
    small = plan(settings=["few-shot"], size="smallest", variants=["dae-ft"])
    assert {c["variant"] for c in small.cells["few-shot"]} == {"dae-ft", "ft"}
    assert len({c["draw"] for c in small.cells["few-shot"]}) == SETTINGS["few-shot"].draws
    assert small.overrides["few-shot"]["data.train_per_class"] == 3  # the smallest form caps the setting's draw


def test_plan_names_an_unknown_setting_size_or_draw_count():
    with pytest.raises(ThreePhaseError, match="Unknown setting 'tail'"):
        plan(settings=["tail"])
    with pytest.raises(ThreePhaseError, match="Unknown size 'huge'"):
        plan(size="huge")
    with pytest.raises(ThreePhaseError, match="--draws 0"):
        plan(draws=0)


def test_questions_are_declared_once_and_every_side_runs():
    seen = [c for q in QUESTIONS.values() for c in q.comparisons]
    assert len(seen) == len(set(seen))  # no comparison twice, in one family or across them
    for setting, dataset, variant, base_setting, baseline in seen:
        assert variant in SETTINGS[setting].variants and dataset in SETTINGS[setting].datasets
        assert baseline in SETTINGS[base_setting].variants and dataset in SETTINGS[base_setting].datasets
        assert (setting, variant) != (base_setting, baseline)


def test_the_long_tail_draws_its_rare_classes_and_states_what_runs(data_dir):
    settings = {k.split(".")[1]: v for k, v in LONG_TAIL.items() if k.startswith("data.")}
    draws = [class_sizes(load_data(dataset="snips2", data_dir=data_dir, seed=seed, max_validation_samples=16,
                                   max_test_samples=16, **settings)["train"]) for seed in range(3)]
    for sizes in draws:
        assert sorted(sizes.values(), reverse=True) == [30, 20, 14, 9, 6, 4, 3]  # 86 examples, ρ = 10 exactly
    rarest = [min(sizes, key=sizes.get) for sizes in draws]
    assert len(set(rarest)) > 1  # a label-id order would make the same class rarest in every draw
    assert "86 examples" in SETTINGS["long-tail"].title and settings["imbalance_factor"] == 10


def test_the_resize_needs_a_long_tail_to_differ():
    """Why the resize is asked only on the long tail: with equal classes the three resizes draw the same pairs."""
    texts = [f"text {i} of class {i % 4}" for i in range(40)]
    labels = [i % 4 for i in range(40)]
    cl = CLConfig(pair_multiplier=3)
    three_phase, _ = pair_dataset(texts, labels, ImbalanceConfig(), cl, seed=1)
    extra_imb, _ = pair_dataset(texts, labels, ImbalanceConfig(max_ratio=20.0), cl, seed=1)
    no_imb, _ = pair_dataset(texts, labels, None, cl, seed=1)
    assert three_phase.to_dict() == extra_imb.to_dict() == no_imb.to_dict()
    tail = [0] * 30 + [1] * 6 + [2] * 4
    assert pair_dataset(texts, tail, ImbalanceConfig(), cl, seed=1)[0].to_dict() != \
        pair_dataset(texts, tail, None, cl, seed=1)[0].to_dict()


def records(setting_runs):
    """{setting: [(dataset, variant, draw, seed, accuracy %)]} -> records by setting."""
    return {s: [{"dataset": d, "variant": v, "data_seed": w, "seed": k, "accuracy": a / 100, "macro_f1": a / 100,
                 "class_sizes": {"a": 30, "b": 3}} for d, v, w, k, a in runs] for s, runs in setting_runs.items()}


def test_answers_follow_the_declared_families():
    runs = []
    for draw in range(6):
        for seed in range(2):
            ft = 80 + draw + 0.3 * seed
            runs += [("snips2", "ft", draw, seed, ft), ("snips2", "three-phase", draw, seed, ft + 5 + 0.1 * seed + 0.2 * (draw % 3)),
                     ("snips2", "joint", draw, seed, ft + 0.1 * ((draw + seed) % 3 - 1))]
    df = answer(records({"long-tail": runs}))
    acc = df[df["metric"] == "accuracy"].set_index(["question", "setting", "dataset", "variant"])
    assert acc.loc[("Q1", "long-tail", "snips2", "three-phase"), "verdict"] == "better"
    assert acc.loc[("Q1", "long-tail", "snips2", "joint"), "verdict"] == "equivalent"
    assert acc.loc[("Q1", "few-shot", "sst2", "cl-ft"), "verdict"] == "undecided"  # not run yet
    three = acc.loc[("Q1", "long-tail", "snips2", "three-phase")]
    assert three["draws"] == 6 and three["seeds"] == 2 and three["unit"] == "draw" and three["margin"] == MARGIN
    # Holm counts the whole declared family (12 in Q1), the comparisons without runs as p = 1.
    q1 = acc.loc["Q1"]
    assert len(q1) == len(QUESTIONS["Q1"].comparisons) == 12
    expected = holm([1.0 if math.isnan(p) else p for p in q1["p_value"]])
    assert q1["p_holm"].dropna().tolist() == pytest.approx([e for e, p in zip(expected, q1["p_value"]) if p == p])
    assert q1["p_holm"].dropna().min() > q1["p_value"].dropna().min()  # stricter than alone
    assert set(df["metric"]) == {"accuracy", "macro_f1"}
    assert {"verdict", "mde", "draws", "seeds"} <= set(df.columns)
    table = to_markdown(df)
    assert "**Q1. Do phases 1-2 help over FT?** (one Holm family of 12)" in table and "not run yet" in table
    text = findings(df, records({"long-tail": runs}))
    assert "Not run yet:** long-tail-equal-pairs, long-tail-tuned, few-shot, unlabelled, full-sst5" in text
    assert "three-phase vs ft: better: +5.2 points" in text


def test_smallest_form_end_to_end(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("THREEPHASE_DATA_DIR", str(data_dir))
    out = tmp_path / "help"
    # dae-ft is the cheapest variant with phase 1; unlabelled's dae-ft is compared with few-shot's (Q4), so two
    # settings cover the draws, the baselines, the runs file and the cross-setting pairs at CI's cost.
    args = ["experiment", "--size", "smallest", "--settings", "few-shot,unlabelled", "--datasets", "sst2",
            "--draws", "2", "--seeds", "1", "--variants", "dae-ft,logreg", "--out", str(out), "--device", "cpu"]
    assert main(args) == 0
    df = pd.read_csv(out / "phases_help.csv")
    assert {"verdict", "mde", "draws", "seeds", "sd_draw", "sd_seed"} <= set(df.columns)
    ran = df[(df["metric"] == "accuracy") & df["diff"].notna()].set_index(["question", "variant"])
    assert set(ran.index) == {("Q1", "dae-ft"), ("Q3", "logreg"), ("Q4", "dae-ft")}
    assert (ran["draws"] == 2).all() and (ran["unit"] == "draw").all()
    lines = (out / "phases_help_runs.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 3 + 2 and str(tmp_path) not in "".join(lines)  # no machine paths
    assert {json.loads(line)["record"]["data_seed"] for line in lines} == {0, 1}
    for name in ("phases_help.md", "phases_help.png", "phases_help_findings.md", "phases_help_design.md"):
        assert (out / name).stat().st_size > 0
    table = (out / "phases_help.csv").read_text()
    # Without the run folders the runs file alone rebuilds the tables, and a rerun trains nothing.
    import shutil

    for setting in ("few-shot", "unlabelled"):
        shutil.rmtree(out / setting)
    (out / "phases_help.csv").unlink()
    assert main(["experiment", "--report", "--out", str(out)]) == 0
    assert (out / "phases_help.csv").read_text() == table
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "held in phases_help_runs.jsonl" in printed.out and " ran " not in printed.out + printed.err
    assert not (out / "few-shot" / "runs").exists()
    assert math.isfinite(pd.read_csv(out / "phases_help.csv").query("metric == 'accuracy'")["diff"].dropna().iloc[0])


def test_plain_run_folders_join_the_runs_file(tmp_path):
    """The lead may run full-sst5 with plain `run --output <out>/full-sst5/runs/<name>` commands: --report takes
    their metrics.json, without their paths, and the paper's table and Q5 show them."""
    for variant, gain in (("ft", 0.0), ("three-phase", 3.0)):
        for seed in range(3):
            folder = tmp_path / "full-sst5" / "runs" / f"sst5__all-MiniLM-L6-v2__{variant}__draw0__seed{seed}"
            folder.mkdir(parents=True)
            (folder / "metrics.json").write_text(json.dumps(
                {"dataset": "sst5", "variant": variant, "seed": seed, "data_seed": 0, "split_sizes": {"train": 8544},
                 "accuracy": (49 + gain + 0.5 * seed * (variant == "ft")) / 100, "macro_f1": 0.45,
                 "class_sizes": {"a": 1, "b": 1}}))
            (folder / "config.json").write_text(json.dumps({"output_dir": str(folder), "seed": seed}))
    assert main(["experiment", "--report", "--out", str(tmp_path)]) == 0
    runs = (tmp_path / "phases_help_runs.jsonl").read_text()
    assert len(runs.splitlines()) == 6 and str(tmp_path) not in runs
    df = pd.read_csv(tmp_path / "phases_help.csv").query("metric == 'accuracy' and question == 'Q5'")
    row = df.set_index("variant").loc["three-phase"]
    assert row["unit"] == "seed" and row["seeds"] == 3 and row["diff"] == pytest.approx(2.5)
    paper = (tmp_path / "phases_help_paper.md").read_text()
    assert "| three-phase | 52.00 " in paper and ", 3 seeds | 54.77 |" in paper and "8544" in paper


def test_the_book_s_tables_are_what_its_runs_file_gives(tmp_path):
    """The chapter includes book/results/phases_help*.md: rebuilt from the committed runs file they must come out
    the same, so that no number on the page is retyped or left from an older set of runs."""
    from pathlib import Path

    results = Path(__file__).resolve().parents[1] / "book" / "results"
    (tmp_path / "phases_help_runs.jsonl").write_text((results / "phases_help_runs.jsonl").read_text())
    tuning = results / "phases_help_tuning"
    if tuning.is_dir():  # the searches of phase 3 that the tuning table reads
        for trials in tuning.glob("*/trials.csv"):
            (tmp_path / trials.relative_to(results)).parent.mkdir(parents=True)
            (tmp_path / trials.relative_to(results)).write_text(trials.read_text())
    assert main(["experiment", "--report", "--out", str(tmp_path)]) == 0
    names = ["phases_help.md", "phases_help_findings.md", "phases_help_design.md", "phases_help_summary.md",
             "phases_help_paper.md", "phases_help.csv"] + (["phases_help_tuning.md"] if tuning.is_dir() else [])
    for name in names:
        assert (tmp_path / name).read_text() == (results / name).read_text(), name


def test_the_tuning_table_sets_the_best_trial_beside_the_shared_recipe(tmp_path):
    from threephase.grid.report import tuning_table

    record = {"variant": "ft", "data_seed": 0, "seed": 0, "phases": {"ft": {"best_epoch": 2, "epochs": [
        {"epoch": 1, "validation_macro_f1": 0.5}, {"epoch": 2, "validation_macro_f1": 0.75}]}}}
    other_draw = {**record, "data_seed": 1, "phases": {"ft": {"best_epoch": 1, "epochs": [
        {"epoch": 1, "validation_macro_f1": 0.99}]}}}
    assert tuning_table(tmp_path, {"long-tail": [record]}) is None  # nothing searched: no table
    study = tmp_path / "phases_help_tuning" / "ft"
    study.mkdir(parents=True)
    pd.DataFrame({"number": [0, 1, 2], "value": [0.7, 0.8125, None], "state": ["COMPLETE", "COMPLETE", "PRUNED"],
                  "params_ft.learning_rate": [1e-4, 3e-4, 2e-5], "params_ft.class_weights": [None, "balanced", None],
                  "params_ft.dropout": [0.1, None, 0.2]}).to_csv(study / "trials.csv", index=False)
    table = tuning_table(tmp_path, {"long-tail": [other_draw, record]})
    assert ("| ft | 75.0 | 81.2 | 3 (1) | ft.learning_rate = 0.0003, ft.class_weights = balanced, ft.dropout = none |"
            in table)


def test_long_tail_tuned_runs_what_the_committed_searches_found():
    # the tuned phase 3 in settings.py is the committed studies' best trial, not a number typed from memory
    from pathlib import Path

    from threephase.grid.settings import TUNED_FT

    tuning = Path(__file__).resolve().parents[1] / "book" / "results" / "phases_help_tuning"
    for variant in SETTINGS["long-tail-tuned"].variants:
        best = json.loads((tuning / variant / "best_config.json").read_text())
        assert best["variant"] == variant and best["data.dataset"] == "snips2"
        assert SETTINGS["long-tail-tuned"].per_variant[variant] == TUNED_FT[variant] == {
            k: v for k, v in best.items() if k.startswith("ft.")}


def test_a_variant_s_own_overrides_reach_only_its_runs(monkeypatch, data_dir):
    # long-tail-tuned gives each method its own tuned phase 3: the group of a draw splits by variant, draws outermost
    from threephase.grid import settings

    monkeypatch.setenv("THREEPHASE_DATA_DIR", str(data_dir))
    tuned = settings.Setting("tuned", LONG_TAIL, ("three-phase", "ft"), datasets=("snips2",), draws=2,
                             per_variant={"ft": {"ft.learning_rate": 3e-4}})
    monkeypatch.setitem(SETTINGS, "tuned-for-test", tuned)
    groups = list(plan(settings=["tuned-for-test"], seeds=2).groups("tuned-for-test"))
    assert [(cells[0]["draw"], {c["variant"] for c in cells}, len(cells)) for _, cells in groups] == [
        (0, {"three-phase"}, 2), (0, {"ft"}, 2), (1, {"three-phase"}, 2), (1, {"ft"}, 2)]
    for overrides, cells in groups:
        assert overrides["data.seed"] == cells[0]["draw"] and overrides["data.imbalance_factor"] == 10
        assert overrides.get("ft.learning_rate") == (3e-4 if cells[0]["variant"] == "ft" else None)


def test_continue_script_seeds_its_runs_file_from_the_book_and_refuses_an_unknown_step(tmp_path):
    # a later session goes on from the committed records: nothing they hold may train again
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["bash", str(root / "scripts" / "continue_experiment.sh"), "no-such-setting"],
                          env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "help")}, capture_output=True, text=True)
    assert done.returncode == 2 and "unknown step 'no-such-setting'" in done.stderr
    assert (tmp_path / "help" / "phases_help_runs.jsonl").read_text() == \
        (root / "book" / "results" / "phases_help_runs.jsonl").read_text()


def test_the_experiment_pins_fp32_and_holds_runs_made_before_the_pin(data_dir, monkeypatch):
    # `auto` is bf16 on a CPU with AMX and fp32 on one without: one setting's records must not depend on the machine.
    from threephase.grid.experiment import held

    monkeypatch.setenv("THREEPHASE_DATA_DIR", str(data_dir))
    grid = plan(settings=["long-tail"], draws=1, seeds=1)
    overrides, cells = next(grid.groups("long-tail"))
    assert overrides["precision"] == "fp32"
    assert plan(settings=["long-tail"], draws=1, seeds=1, extra={"precision": "bf16"}).overrides[
        "long-tail"]["precision"] == "bf16"
    cell = cells[0]
    from threephase.grid.cells import run_name

    before_pin = {k: v for k, v in overrides.items() if k != "precision"}
    entry = lambda resolved: {("long-tail", run_name(cell)): {  # noqa: E731
        "name": run_name(cell), "record": {"precision": resolved, "parameters": {"overrides": before_pin}}}}
    assert held([cell], "long-tail", overrides, entry("fp32")) == [cell]  # auto gave fp32 where it ran
    with pytest.raises(ThreePhaseError, match="precision"):
        held([cell], "long-tail", overrides, entry("bf16"))


def test_an_override_set_to_none_reaches_the_run_s_config(data_dir, monkeypatch):
    # full-sst5 lifts the preset's caps with None and long-tail-tuned's phase 3 has no class weights (None): the
    # grid once dropped both (a notebook parameter left None means "the preset's"), and ran 448 texts, balanced.
    from threephase.grid.cells import cell_config, cell_parameters

    monkeypatch.setenv("THREEPHASE_DATA_DIR", str(data_dir))
    grid = plan(settings=["full-sst5"], seeds=1, variants=["ft"])
    config = cell_config(cell_parameters(grid.cells["full-sst5"][0], "unused", grid.overrides["full-sst5"]))
    assert config.data.max_train_samples is None and config.data.max_test_samples is None
    assert config.precision == "bf16"
    grid = plan(settings=["long-tail-tuned"], draws=1, seeds=1, variants=["ft"])
    overrides = {**grid.overrides["long-tail-tuned"], **grid.variant_overrides["long-tail-tuned"]["ft"]}
    config = cell_config(cell_parameters(grid.cells["long-tail-tuned"][0], "unused", overrides))
    assert config.ft.class_weights is None
    assert config.ft.learning_rate == SETTINGS["long-tail-tuned"].per_variant["ft"]["ft.learning_rate"]


def test_a_held_run_whose_config_contradicts_its_overrides_is_refused(data_dir, monkeypatch):
    # the long-tail-tuned runs made while the grid dropped None overrides name class_weights None in their record
    # and hold "balanced" in their config: they must train again, not be counted as the tuned recipe
    from threephase.grid.cells import run_name
    from threephase.grid.experiment import held

    monkeypatch.setenv("THREEPHASE_DATA_DIR", str(data_dir))
    grid = plan(settings=["long-tail-tuned"], draws=1, seeds=1, variants=["ft"])
    cell = grid.cells["long-tail-tuned"][0]
    overrides = {**grid.overrides["long-tail-tuned"], "ft.class_weights": None}
    entry = lambda weights: {("long-tail-tuned", run_name(cell)): {  # noqa: E731
        "name": run_name(cell), "config": {"precision": "fp32", "ft": {"class_weights": weights}},
        "record": {"precision": "fp32", "parameters": {"overrides": overrides}}}}
    assert held([cell], "long-tail-tuned", overrides, entry(None)) == [cell]
    with pytest.raises(ThreePhaseError, match="ft.class_weights='balanced'"):
        held([cell], "long-tail-tuned", overrides, entry("balanced"))


def test_the_paper_table_states_what_a_full_data_run_cost():
    from threephase.grid.report import paper_table

    def record(variant, seed, accuracy, phases):
        return {"dataset": "sst5", "variant": variant, "seed": seed, "accuracy": accuracy,
                "device": {"device": "cpu", "cpu_count": 2},
                "precision": "bf16", "split_sizes": {"train": 8544}, "wall_time_s": 60.0 * sum(phases.values()),
                "phases": {name: {"wall_time_s": 60.0 * minutes, "epochs": [{}] * (11 + seed)}
                           for name, minutes in phases.items()}}

    runs = [record("three-phase", s, 0.5, {"dae": 9, "cl": 6, "ft": 30}) for s in (0, 1)] + [
        record("ft", 0, 0.48, {"ft": 25})]
    table = paper_table({"full-sst5": runs})
    assert "| three-phase | 50.00 [50.00, 50.00], 2 seeds | 54.77 |" in table
    assert "| ft | 48.00, 1 seed |" in table and "Training examples here: 8544." in table
    assert ("(cpu, 2 cores in bf16, mean wall time per run as recorded, in minutes): three-phase 45 min (DAE 9, CL 6, FT 30; "
            "phase 3 stopped after 11-12 epochs); ft 25 min (FT 25; phase 3 stopped after 11 epochs).") in table
    assert "What a run cost" not in paper_table({"full-sst5": []})
