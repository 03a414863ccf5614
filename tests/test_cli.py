"""The command line: help, a small run, and one clear error (no traceback, nothing written) per bad input."""

import argparse
import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from threephase.cli import main

SMALL = ["--set", "data.train_per_class=4", "--set", "data.validation_per_class=2", "--set", "data.test_per_class=3",
         "--set", "ft.num_train_epochs=1", "--set", "ft.min_epochs=1", "--set", "max_seq_length=16"]


def test_help_lists_datasets_variants_presets(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("snips2", "ag_news", "three-phase", "extra-imb", "no-imb", "paper", "cpu", "--seed", "--set"):
        assert word in text


def test_small_run_writes_its_record(tmp_path, data_dir, capsys):
    output = tmp_path / "run"
    code = main(["run", "--dataset", "snips2", "--data-dir", data_dir, "--variant", "ft", "--preset", "cpu",
                 "--seed", "1", "--output", str(output), *SMALL])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["variant"] == "ft" and 0 <= summary["accuracy"] <= 1
    config = json.loads((output / "config.json").read_text())
    assert config["seed"] == 1 and config["data"]["train_per_class"] == 4
    assert json.loads((output / "metrics.json").read_text())["accuracy"] == pytest.approx(summary["accuracy"], abs=1e-4)
    # a second run into the same folder is refused unless --overwrite
    assert main(["run", "--dataset", "snips2", "--data-dir", data_dir, "--variant", "ft", "--output", str(output),
                 *SMALL]) == 2
    assert "--overwrite" in capsys.readouterr().err


def write_csv(folder, name, frame):
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / name, index=False)


def good_frame(classes=(0, 1), n=4, start=0):
    return pd.DataFrame({"text": [f"sample text {start + i} for class {c}" for c in classes for i in range(n)],
                         "label": [c for c in classes for _ in range(n)]})


def bad_case(case, tmp_path, data_dir):
    """Command-line arguments that make the named mistake."""
    folder = tmp_path / "data"
    common = ["--variant", "ft", "--output", str(tmp_path / "out")]
    if case == "unknown dataset":
        return ["--dataset", "snipz", *common]
    if case == "dataset missing from data dir":
        return ["--dataset", "snips", "--data-dir", data_dir, *common]
    if case == "data dir missing":
        return ["--data-dir", str(tmp_path / "nope"), *common]
    if case == "missing column":
        write_csv(folder, "train.csv", good_frame().rename(columns={"text": "sentence"}))
        return ["--data-dir", str(folder), *common]
    if case == "labels.json inconsistent":
        write_csv(folder, "train.csv", good_frame((0, 1, 5)))
        (folder / "labels.json").write_text('["a", "b"]')
        return ["--data-dir", str(folder), *common]
    if case == "single class split":
        write_csv(folder, "train.csv", good_frame())
        write_csv(folder, "validation.csv", good_frame((1,)))
        write_csv(folder, "test.csv", good_frame())
        return ["--data-dir", str(folder), *common]
    if case == "single example class":
        write_csv(folder, "train.csv", pd.concat([good_frame((0, 1)), good_frame((2,), n=1)]))
        write_csv(folder, "validation.csv", good_frame())
        write_csv(folder, "test.csv", good_frame())
        return ["--data-dir", str(folder), "--variant", "cl-ft", "--output", str(tmp_path / "out")]
    if case == "min ratio above max ratio":
        return ["--dataset", "snips2", "--data-dir", data_dir, *common, "--set", "imbalance.min_ratio=5"]
    if case == "ratio not positive":
        return ["--dataset", "snips2", "--data-dir", data_dir, *common, "--set", "imbalance.max_ratio=-1"]
    if case == "deletion ratio out of range":
        return ["--dataset", "snips2", "--data-dir", data_dir, *common, "--set", "dae.deletion_ratio=1.5"]
    if case == "model path missing":
        return ["--dataset", "snips2", "--data-dir", data_dir, *common, "--model", str(tmp_path / "no-model")]
    if case == "hub model unreachable":
        return ["--dataset", "snips2", "--data-dir", data_dir, *common, "--model", "someone/not-cached-model"]
    if case == "unknown setting":
        return ["--dataset", "snips2", *common, "--set", "ft.learning_rat=1"]
    if case == "labels.json broken":
        write_csv(folder, "train.csv", good_frame())
        (folder / "labels.json").write_text('["a", "b"')
        return ["--data-dir", str(folder), *common]
    if case == "output is a file":
        (tmp_path / "a-file").write_text("not a folder")
        return ["--dataset", "snips2", "--data-dir", data_dir, "--output", str(tmp_path / "a-file")]
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown dataset", "Unknown dataset 'snipz'"),
        ("dataset missing from data dir", "no 'snips' folder"),
        ("data dir missing", "does not exist"),
        ("missing column", "no column 'text'"),
        ("labels.json inconsistent", "do not fit"),
        ("single class split", "single class"),
        ("single example class", "single training example"),
        ("min ratio above max ratio", "min_ratio"),
        ("ratio not positive", "positive"),
        ("deletion ratio out of range", "deletion_ratio"),
        ("model path missing", "does not exist"),
        ("hub model unreachable", "HF_HUB_OFFLINE"),
        ("unknown setting", "Unknown setting"),
        ("labels.json broken", "not valid JSON"),
        ("output is a file", "is a file, not a folder"),
    ],
)
def test_bad_input_gets_one_clear_error(case, message, tmp_path, data_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["run", *bad_case(case, tmp_path, data_dir), *SMALL])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, value", [("--variant", "four-phase"), ("--preset", "gpu")])
def test_unknown_variant_or_preset_from_a_real_process(flag, value, tmp_path):
    done = subprocess.run([sys.executable, "-m", "threephase", "run", flag, value, "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr and value in done.stderr and "Traceback" not in done.stderr


def test_every_device_that_help_offers_is_accepted(capsys, monkeypatch):
    import re

    import torch

    from threephase.presets import preset_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # help and validate agree on a machine with a GPU
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    offered = set(re.findall(r"\b(?:cpu|mps|cuda(?::\d+)?)\b", capsys.readouterr().out))
    assert {"cpu", "cuda"} <= offered
    for device in offered:
        preset_config("cpu", "snips2", device=device).validate()


def test_command_line_flags_beat_the_config_file_and_set_comes_last(tmp_path):
    """A saved config.json holds output_dir, seed, variant, ...: the flags typed on the command line win."""
    from threephase.cli import build_parser, run_config

    saved = {"output_dir": str(tmp_path / "old"), "seed": 42, "variant": "three-phase", "device": "cpu",
             "model_name_or_path": "some/model", "data": {"dataset": "sst2", "train_per_class": 5},
             "ft": {"learning_rate": 3e-5}}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    args = build_parser().parse_args([
        "run", "--config", str(tmp_path / "config.json"), "--output", str(tmp_path / "new"), "--seed", "7",
        "--variant", "logreg", "--dataset", "snips2", "--model", "other/model", "--device", "cuda",
        "--set", "seed=8", "--set", "ft.learning_rate=4e-5"])
    config = run_config(args)
    assert config.output_dir == str(tmp_path / "new")
    assert (config.variant, config.seed, config.data.dataset, config.model_name_or_path, config.device) == (
        "logreg", 8, "snips2", "other/model", "cuda")
    assert config.ft.learning_rate == 4e-5 and config.data.train_per_class == 5  # the file's other settings stay
    # flags not given leave the file's values, not the flags' defaults
    args = build_parser().parse_args(["run", "--config", str(tmp_path / "config.json"), "--output", str(tmp_path / "n")])
    config = run_config(args)
    assert (config.seed, config.variant, config.data.dataset, config.output_dir) == (
        42, "three-phase", "sst2", str(tmp_path / "n"))


def test_a_saved_config_never_sends_the_run_into_the_older_run(tmp_path, data_dir, capsys):
    older = tmp_path / "x"
    older.mkdir()
    (older / "keep.txt").write_text("the older run")
    config = {"output_dir": str(older), "seed": 42, "variant": "ft", "preset": "cpu", "data": {"dataset": "snips2"}}
    (older / "config.json").write_text(json.dumps(config))
    newer = tmp_path / "y"
    code = main(["run", "--variant", "logreg", "--seed", "7", "--config", str(older / "config.json"), "--data-dir",
                 data_dir, "--output", str(newer), "--overwrite", *SMALL])
    assert code == 0
    assert (older / "keep.txt").read_text() == "the older run"
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["output"] == str(newer)
    written = json.loads((newer / "config.json").read_text())
    assert (written["seed"], written["variant"], written["output_dir"]) == (7, "logreg", str(newer))


def test_the_command_line_loads_without_the_training_stack():
    """--help must answer at once: the parser is built without importing torch, transformers or sentence-transformers."""
    code = ("import sys, threephase.cli as cli; cli.build_parser(); "
            "print([m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_help_names_every_file_type_that_data_dir_reads(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for suffix in (".csv", ".tsv", ".jsonl", ".json", ".parquet"):
        assert suffix in text


def _commands():
    from threephase.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


@pytest.mark.parametrize("command", ["run", "reproduce", "experiment", "search"])
def test_help_names_only_options_the_command_has(command):
    # search shares the executor options with the grid commands but has no --jobs pool; its help must not send a
    # reader to one
    parser = _commands()[command]
    own = {s for a in parser._actions for s in a.option_strings}
    texts = [parser.description or "", parser.epilog or ""] + [a.help or "" for a in parser._actions]
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", " ".join(texts)))
    assert named - own == set()


@pytest.mark.parametrize("command", ["run", "reproduce", "experiment", "search"])
def test_help_states_every_default(command):
    # a default the reader cannot see is one they cannot plan for (experiment --out writes beside the book's run)
    parser = _commands()[command]
    silent = [a.option_strings[0] for a in parser._actions
              if a.option_strings and a.default not in (None, False, [], argparse.SUPPRESS)
              and "default" not in (a.help or "") and a.dest != "help"]
    assert silent == []
