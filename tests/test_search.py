"""``python -m threephase search``: spaces checked before anything runs, trials scored on validation with the test
split unread, a killed study resumed with only its missing trials, pruning, and a best config that ``run`` takes."""

import json

import optuna
import pandas as pd
import pytest
from sentence_transformers import SentenceTransformer

from threephase import ThreePhaseError, preset_config, run
from threephase.cli import main
from threephase.config import VARIANTS, RunConfig
from threephase.grid.search import check_space, default_space_path, load_space, search

from conftest import tiny_config

TINY = {"data.train_per_class": 4, "data.validation_per_class": 2, "data.test_per_class": 2, "max_seq_length": 32}


def tiny(variant: str, data_dir, **more) -> RunConfig:
    from threephase.config import apply_overrides

    return apply_overrides(tiny_config(variant), {**TINY, "data.data_dir": data_dir, **more})


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_ships_a_default_space_that_checks(variant):
    space, source = load_space(default_space_path(variant))
    check_space(space, preset_config("cpu", "snips2", variant=variant), source)


@pytest.mark.parametrize("space, message", [
    ({"ft.learning_rat": {"low": 1e-5, "high": 1e-3}}, "Unknown setting 'ft.learning_rat'"),
    ({"ft.learning_rate": {"low": 1e-3, "high": 1e-5}}, "must be below"),
    ({"ft.learning_rate": {"low": 0, "high": 1e-3, "log": True}}, "log range needs"),
    ({"ft.learning_rate": {"low": 1e-5}}, "has \"low\" and \"high\""),
    ({"ft.num_train_epochs": {"low": 5, "high": 20}}, "add \"int\": true"),
    ({"dae.deletion_ratio": {"low": 0.3, "high": 1.5}}, "the value 1.5 cannot be used. dae.deletion_ratio must lie"),
    ({"cl.pair_multiplier": {"choices": []}}, "non-empty list"),
    ({"data.train_per_class": {"choices": [4, 8]}}, "cannot vary 'data.train_per_class'"),
    ({"seed": {"choices": [1, 2]}}, "cannot vary 'seed'"),
    ({}, "names no setting"),
])
def test_a_bad_space_gets_a_clear_error_before_anything_is_written(space, message, tmp_path):
    with pytest.raises(ThreePhaseError, match=message.replace("(", r"\(")):
        search(preset_config("cpu", "snips2", variant="ft"), space, n_trials=1, out=tmp_path / "search")
    assert not (tmp_path / "search").exists()


def test_a_killed_search_resumes_with_only_its_missing_trials(tmp_path, data_dir):
    config, out = tiny("logreg", data_dir), tmp_path / "search"
    space = {"logreg.C": {"low": 0.01, "high": 10.0, "log": True}}
    study = search(config, space, n_trials=2, out=out)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    study.ask()  # a trial whose process was killed: RUNNING forever, not counted as finished
    study = search(config, space, n_trials=3, out=out)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "RUNNING", "COMPLETE"]
    assert len(search(config, space, n_trials=3, out=out).trials) == 4  # nothing left to run
    metrics = json.loads((out / "trials" / "3" / "metrics.json").read_text())
    assert metrics["evaluated_split"] == "validation" and "test" not in metrics["split_sizes"]
    assert study.trials[3].value == pytest.approx(metrics["macro_f1"])
    assert not (out / "trials" / "3" / "classifier").exists()
    assert len(pd.read_csv(out / "trials.csv")) == 4 and (out / "trials.png").stat().st_size > 0
    best = RunConfig.from_json_file(out / "best_config.json")
    assert best.logreg.C == pytest.approx(study.best_params["logreg.C"]) and best.variant == "logreg"
    with pytest.raises(ThreePhaseError, match="another space"):  # a changed space would mix two searches
        search(config, {"logreg.C": {"low": 0.1, "high": 1.0}}, n_trials=4, out=out)


@pytest.mark.parametrize("freeze_body", [True, False])  # phase 3's own loop, and the trainer's callback
def test_a_pruned_trial_is_pruned_and_leaves_no_run_folder(freeze_body, tmp_path, data_dir):
    class Always(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    config = tiny("ft", data_dir, **{"ft.freeze_body": freeze_body, "ft.num_train_epochs": 3})
    study = search(config, {"ft.learning_rate": {"low": 1e-5, "high": 1e-4, "log": True}}, n_trials=1,
                   out=tmp_path / "search", pruner=Always())
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED and list(trial.intermediate_values) == [1]
    assert not (tmp_path / "search" / "trials" / "0").exists()
    assert not (tmp_path / "search" / "best_config.json").exists() and (tmp_path / "search" / "trials.csv").exists()


POISON = "POISONED TEST TEXT"


def test_a_search_never_reads_the_test_split(tmp_path, data_dir, tiny_data, monkeypatch):
    """Every text of test.csv carries a marker; the body refuses to encode or tokenize one."""
    folder = tmp_path / "data"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        frame = tiny_data[split].to_pandas()
        if split == "test":
            frame["text"] = POISON + " " + frame["text"]
        frame.to_csv(folder / f"{split}.csv", index=False)
    names = tiny_data["train"].features["label"].names
    (folder / "labels.json").write_text(json.dumps(names))

    def guard(method):
        def guarded(self, texts, *args, **kwargs):
            items = [texts] if isinstance(texts, str) else list(texts)
            if any(POISON in str(item) for item in items):
                raise AssertionError("the test split was read")
            return method(self, texts, *args, **kwargs)
        return guarded

    for name in ("encode", "tokenize"):
        monkeypatch.setattr(SentenceTransformer, name, guard(getattr(SentenceTransformer, name)))
    config = tiny("ft", str(folder), **{"data.dataset": None, "ft.freeze_body": True, "ft.num_train_epochs": 2})
    study = search(config, {"ft.head_learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}, n_trials=2,
                   out=tmp_path / "search")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    with pytest.raises(AssertionError, match="the test split was read"):  # the guard catches a run that scores test
        run(config)


def test_the_cli_searches_a_baseline_and_run_takes_its_best_config(tmp_path, data_dir, capsys):
    out = tmp_path / "search"
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    common = ["--dataset", "snips2", "--data-dir", data_dir, "--variant", "logreg", "--preset", "cpu", *sets]
    assert main(["search", *common, "--n-trials", "2", "--metric", "accuracy", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["finished_trials"] == 2 and set(summary["best_params"]) == {"logreg.C"}  # the default space
    assert json.loads((out / "best_config.json").read_text())["logreg.C"] == summary["best_params"]["logreg.C"]
    assert main(["run", *common, "--config", str(out / "best_config.json"), "--output", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["logreg"]["C"] == pytest.approx(summary["best_params"]["logreg.C"])
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["evaluated_split"] == "test"
    assert main(["search", *common, "--space", str(tmp_path / "nope.json"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bad_data_fails_before_the_study_is_created(tmp_path, capsys):
    out = tmp_path / "search"
    assert main(["search", "--data-dir", str(tmp_path / "nope"), "--variant", "logreg", "--out", str(out)]) == 2
    assert "threephase: error:" in capsys.readouterr().err and not out.exists()


def test_the_search_command_takes_its_settings_as_run_does(tmp_path):
    """No --preset means the cpu preset, as for run; flags typed on the command line beat --config; --set is last."""
    from threephase.cli import build_parser
    from threephase.presets import config_from_options

    (tmp_path / "best.json").write_text(json.dumps({"seed": 3, "variant": "cl-ft", "ft.learning_rate": 3e-5}))
    args = build_parser().parse_args(["search", "--dataset", "snips2", "--variant", "ft", "--out", str(tmp_path / "s"),
                                      "--config", str(tmp_path / "best.json"), "--set", "ft.patience=2"])
    config = config_from_options(args)
    assert (config.preset, config.variant, config.seed) == ("cpu", "ft", 3)
    assert config.ft.learning_rate == 3e-5 and config.ft.patience == 2


def test_a_worker_that_opens_the_study_while_another_records_it_sees_the_whole_search(tmp_path):
    # Jobs of one search start together: the second opened the study after the first had written the space but not
    # yet the settings, and refused it as "started with other settings".
    from threephase.grid import search as search_module

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    second = optuna.load_study(study_name="s", storage=storage)
    space, config = {"ft.learning_rate": {"low": 1e-5, "high": 1e-3, "log": True}}, preset_config("cpu", variant="ft")
    write, interleaved = first.set_user_attr, []

    def then_the_other_worker(key, value):
        write(key, value)
        if not interleaved:
            interleaved.append(key)
            search_module._check_same_search(second, space, config, "macro_f1")

    first.set_user_attr = then_the_other_worker
    search_module._check_same_search(first, space, config, "macro_f1")
    assert interleaved
    with pytest.raises(ThreePhaseError, match="another metric"):  # a different search is still refused
        search_module._check_same_search(optuna.load_study(study_name="s", storage=storage), space, config, "accuracy")
