"""Real-world input a new user brings: one paragraph naming the problem and the fix, exit status 2, no traceback,
nothing written. Inputs that train correctly but cannot end well get a warning instead."""

import json
import logging

import pandas as pd
import pytest

import threephase.pipeline as pipeline
from threephase import ThreePhaseError, load_data
from threephase.cli import main

SMALL = ["--set", "data.train_per_class=4", "--set", "data.validation_per_class=2", "--set", "data.test_per_class=3",
         "--set", "ft.num_train_epochs=1", "--set", "ft.min_epochs=1", "--set", "max_seq_length=16"]


def frame(classes=("a", "b"), n=4, start=0):
    return pd.DataFrame({"text": [f"sample text {start + i} for class {c}" for c in classes for i in range(n)],
                         "label": [c for c in classes for _ in range(n)]})


def folder_with(tmp_path, train, validation=None, test=None):
    folder = tmp_path / "data"
    folder.mkdir()
    for name, table in (("train", train), ("validation", validation), ("test", test)):
        if isinstance(table, pd.DataFrame):
            table.to_csv(folder / f"{name}.csv", index=False)
        elif isinstance(table, bytes):
            (folder / f"{name}.csv").write_bytes(table)
    return folder


def fails_cleanly(args, tmp_path, capsys, *messages):
    """Run the CLI; check exit status 2, one paragraph holding ``messages``, no traceback, no run folder."""
    code = main(["run", "--output", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    paragraph = [line for line in err.splitlines() if line.startswith("threephase: error:")]
    assert len(paragraph) == 1, err
    for message in messages:
        assert message in paragraph[0], paragraph[0]
    assert not (tmp_path / "out").exists()
    return paragraph[0]


@pytest.fixture
def no_training(monkeypatch):
    """Bad settings must be refused before any phase trains: training at all fails the test."""
    def train_variant(*args, **kwargs):
        raise AssertionError("a phase started training before the settings were checked")

    monkeypatch.setattr(pipeline, "train_variant", train_variant)


def test_latin1_csv_names_the_file_the_line_and_the_fix(tmp_path, capsys):
    text = "text,label\nplay some jazz,a\nbook a table,b\nun caf\xe9 cr\xe8me,a\nwill it rain,b\n"
    folder = folder_with(tmp_path, text.encode("latin-1"))
    fails_cleanly(["--data-dir", str(folder), "--variant", "ft"], tmp_path, capsys,
                  "train.csv", "not UTF-8", "line 4", "Re-save the file as UTF-8")


def test_unterminated_quote_names_the_file_and_the_row(tmp_path, capsys):
    folder = folder_with(tmp_path, b'text,label\nplay some jazz,a\n"book a table,b\nwill it rain,b\n')
    fails_cleanly(["--data-dir", str(folder), "--variant", "ft"], tmp_path, capsys,
                  "train.csv", "EOF inside string", "line 3 of the file", "unterminated quote")


def test_device_cuda_without_cuda(tmp_path, capsys, data_dir, monkeypatch, no_training):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without a usable GPU
    fails_cleanly(["--dataset", "snips2", "--data-dir", data_dir, "--variant", "ft", "--device", "cuda", *SMALL],
                  tmp_path, capsys, "no usable CUDA GPU", "--device cpu")


def test_a_typo_in_phase3_training_args_stops_the_run_before_phase1(tmp_path, capsys, data_dir, no_training):
    fails_cleanly(["--dataset", "snips2", "--data-dir", data_dir, "--variant", "three-phase", *SMALL,
                   "--set", "ft.training_args.gradient_acumulation_steps=2"], tmp_path, capsys,
                  "ft.training_args", "gradient_acumulation_steps")


def test_no_ft_epoch_is_refused(tmp_path, capsys, data_dir, no_training):
    fails_cleanly(["--dataset", "snips2", "--data-dir", data_dir, "--variant", "ft", *SMALL,
                   "--set", "ft.num_train_epochs=0"], tmp_path, capsys, "ft.num_train_epochs must be at least 1")


def test_max_seq_length_beyond_the_model_leaves_nothing_behind(tmp_path, capsys, data_dir):
    args = ["--dataset", "snips2", "--data-dir", data_dir, "--variant", "ft", *SMALL]
    fails_cleanly([*args, "--set", "max_seq_length=1024"], tmp_path, capsys, "max_seq_length=1024", "512")
    # the next run into the same folder is a fresh one, not "pass --resume"
    fails_cleanly([*args, "--set", "ft.num_train_epochs=0"], tmp_path, capsys, "ft.num_train_epochs")


def test_a_crash_before_anything_is_resumable_leaves_no_run_folder(tmp_path, data_dir, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("out of memory in phase 1")

    monkeypatch.setattr(pipeline, "train_variant", crash)
    with pytest.raises(RuntimeError):
        main(["run", "--dataset", "snips2", "--data-dir", data_dir, "--variant", "ft", "--output",
              str(tmp_path / "out"), *SMALL])
    assert not (tmp_path / "out").exists()


def test_read_only_output_is_refused_before_the_data_loads(tmp_path, capsys, data_dir, monkeypatch):
    import os

    parent = tmp_path / "readonly"
    parent.mkdir()
    real_access = os.access
    # A read-only folder, also for root (who passes every permission bit): the check asks os.access first.
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path) == str(parent)
                        else real_access(path, mode, **kw))

    def load_data(*args, **kwargs):
        raise AssertionError("the data loaded before the output folder was checked")

    monkeypatch.setattr(pipeline, "load_data", load_data)
    code = main(["run", "--dataset", "snips2", "--data-dir", data_dir, "--variant", "ft", "--output",
                 str(parent / "out"), *SMALL])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "Cannot write the run folder" in err and "read-only" in err and "--output" in err
    assert not (parent / "out").exists()


def test_blank_label(tmp_path, capsys):
    table = frame()
    table.loc[2, "label"] = "   "
    fails_cleanly(["--data-dir", str(folder_with(tmp_path, table)), "--variant", "ft"], tmp_path, capsys,
                  "blank labels", "fill in those labels")


def test_text_column_equal_to_label_column(tmp_path, capsys, data_dir, no_training):
    fails_cleanly(["--dataset", "snips2", "--data-dir", data_dir, "--variant", "ft", "--text-column", "label",
                   "--label-column", "label", *SMALL], tmp_path, capsys, "are both 'label'", "--text-column")


def test_one_text_label_among_integer_ids_names_that_label(tmp_path, capsys):
    table = frame(classes=(0, 1))
    table["label"] = table["label"].astype(object)
    table.loc[5, "label"] = "positive"
    message = fails_cleanly(["--data-dir", str(folder_with(tmp_path, table)), "--variant", "ft"], tmp_path, capsys,
                            "mixes integer ids (0, 1)", "'positive'")
    assert "'0'" not in message and "'1'" not in message


def test_a_label_that_train_lacks_is_named_with_its_counts(tmp_path, caplog):
    folder = folder_with(tmp_path, frame(), validation=frame(n=2, start=10),
                         test=frame(classes=("a", "b", "c"), n=3, start=20))
    with caplog.at_level(logging.WARNING, logger="threephase"):
        data = load_data(data_dir=str(folder), dataset=None)
    assert data["train"].features["label"].names == ["a", "b", "c"]
    assert "The test split holds 3 example(s) of 'c', which the train split lacks" in caplog.text
    assert "validation split holds" not in caplog.text


def test_a_test_split_that_repeats_training_texts_gets_the_overlap_count(tmp_path, caplog):
    train = frame()
    test = pd.concat([train.iloc[[0, 1, 5]], frame(n=2, start=30)])
    folder = folder_with(tmp_path, train, validation=frame(n=2, start=10), test=test)
    with caplog.at_level(logging.WARNING, logger="threephase"):
        load_data(data_dir=str(folder), dataset=None)
    assert "3 of the 7 test texts also occur in the train split" in caplog.text
    assert "validation texts" not in caplog.text


def test_resume_on_a_missing_folder_says_it_starts_afresh(tmp_path, data_dir, caplog, capsys):
    with caplog.at_level(logging.WARNING, logger="threephase"):
        code = main(["run", "--dataset", "snips2", "--data-dir", data_dir, "--variant", "logreg", "--resume",
                     "--output", str(tmp_path / "new"), *SMALL])
    assert code == 0
    assert "holds no run to continue (it does not exist); starting the run afresh" in caplog.text
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["output"] == str(tmp_path / "new")


def test_push_to_hub_offline_says_how_to_save_locally(monkeypatch, tiny_data):
    from threephase import MLPHead, ThreePhaseClassifier, load_body

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    body = load_body("sentence-transformers/all-MiniLM-L6-v2")
    classifier = ThreePhaseClassifier(body, MLPHead(body.get_embedding_dimension(), 7),
                                      tiny_data["train"].features["label"].names)
    with pytest.raises(ThreePhaseError, match=r"HF_HUB_OFFLINE=1 .*save_pretrained"):
        classifier.push_to_hub("someone/snips2-threephase")
