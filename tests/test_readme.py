"""The README's and the API page's Python blocks run as pasted (offline: HF_HUB_OFFLINE=1 and $THREEPHASE_DATA_DIR,
as in conftest), and the README's expected result is the committed record of the run its main command makes.

Each block trains, and at its own size takes minutes on 2 CPU cores, so each runs as a reduced copy: the same code
with smaller sizes, made by replacements that must each match the README (a changed block fails here until its
copy is updated). What a reduced copy leaves out is said where it is made.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from threephase import ThreePhaseError

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
API = ROOT / "book" / "api.md"  # the README is a landing page; the longer examples live on the book's API page
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
API_BLOCKS = re.findall(r"```python\n(.*?)```", API.read_text(), flags=re.DOTALL)
TINY = ('{"data.max_train_samples": 28, "data.max_validation_samples": 14, "data.max_test_samples": 14, '
        '"data.min_per_class": 2, "max_seq_length": 16, "ft.num_train_epochs": 1, "ft.min_epochs": 1}')


def reduced(block: str, *replacements: tuple[str, str]) -> str:
    for old, new in replacements:
        assert old in block, f"the README block changed: {old!r} is gone; update tests/test_readme.py"
        block = block.replace(old, new)
    return block


def block_starting(text: str) -> str:
    found = [block for block in BLOCKS + API_BLOCKS if block.startswith(text)]
    assert len(found) == 1, f"no README block starts with {text!r}"
    return found[0]


def test_every_python_block_is_run_here():
    assert len(BLOCKS) == 1 and BLOCKS[0].startswith("from threephase import ThreePhaseClassifier")
    starts = ("from datasets import Dataset", "from threephase import (CLConfig")
    assert len(API_BLOCKS) == len(starts) and all(any(b.startswith(s) for b in API_BLOCKS) for s in starts)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_expected_result_is_the_committed_record_of_the_main_command(monkeypatch, precision):
    # the README quotes the run's last line in each precision `auto` may choose on a CPU (bf16 with AMX, fp32
    # without); the same run (cpu preset, snips2, three-phase, seed 0) is among the results page's committed runs of
    # that precision, so each line is checked against that record, not retyped
    import json
    import shlex

    from threephase import precision as precision_module
    from threephase.cli import build_parser
    from threephase.notebook import saved_runs
    from threephase.presets import config_from_options

    monkeypatch.setattr(precision_module, "cpu_has_fast_bf16", lambda: precision == "bf16")
    text = README.read_text()
    command = next(line for line in text.splitlines() if "python -m threephase run --dataset snips2" in line)
    args = build_parser().parse_args(shlex.split(command.split("python -m threephase ", 1)[1]))
    config = config_from_options(args)
    config.device = "cpu"
    results = ROOT / "book" / "results"
    [record] = saved_runs([results / "table4_snips2_cpu_runs.jsonl", results / "table4_snips2_cpu_bf16_runs.jsonl"],
                          [config])
    assert record is not None, "the README's main command is not the run the committed record made"
    summary = {k: round(record[k], 4) for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1")}
    assert json.dumps({"output": config.output_dir, "variant": config.variant, **summary}) in text


def test_the_readme_is_a_landing_page():
    text = README.read_text()
    assert len(text) < 8000  # what it is, the two commands, the expected line, a picture, links into the book
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in text  # any machine, CPU only
    assert "$THREEPHASE_DATA_DIR" in text and "Hugging Face Hub" in text
    assert "## Compare on your own data" in text
    for link in re.findall(r"\]\(((?:book|notebooks)/[^)#]+)\)", text):
        assert (ROOT / link).is_file(), link


def test_use_it_from_python(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    block = block_starting("from threephase import ThreePhaseClassifier")
    code = reduced(
        block,
        # the cpu preset's sizes train for minutes: the reduced copy draws 2-4 examples per class
        ('output_dir="runs/snips2-joint")\n',
         f'output_dir="runs/snips2-joint")\nfrom threephase import apply_overrides\nconfig = apply_overrides(config, {TINY})\n'),
        # the upload needs the Hub: offline, it must fail with the library's error that says how to save locally
        ('clf.push_to_hub("your-name/snips2-threephase")',
         'with pytest.raises(ThreePhaseError, match="save_pretrained"): clf.push_to_hub("your-name/snips2-threephase")'),
    )
    scope = {"pytest": pytest, "ThreePhaseError": ThreePhaseError}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    clf = scope["clf"]
    assert clf.predict(["play the latest album by daft punk"])[0] in clf.label_names
    assert scope["clf"].predict_proba(["book a table"]).shape == (1, len(clf.label_names))
    assert (tmp_path / "runs" / "snips2-joint" / "metrics.json").is_file()


def test_your_own_data(tmp_path, monkeypatch, tiny_data):
    monkeypatch.chdir(tmp_path)
    block = block_starting("from datasets import Dataset")
    code = reduced(block, ('config.data.text_column, config.data.label_column = "sentence", "intent"\n',
                           'config.data.text_column, config.data.label_column = "sentence", "intent"\n'
                           f'from threephase import apply_overrides\nconfig = apply_overrides(config, {TINY})\n'))
    names = tiny_data["train"].features["label"].names
    # the block's two lists are the reader's: here, snips2's 8 training sentences per class and their intents
    scope = {"sentences": tiny_data["train"]["text"], "intents": [names[i] for i in tiny_data["train"]["label"]]}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102
    assert scope["result"].classifier.label_names == sorted(names)
    assert (tmp_path / "runs" / "mine" / "metrics.json").is_file()


def test_each_phase_on_its_own(data_dir):
    block = block_starting("from threephase import (CLConfig")
    code = reduced(
        block,
        # 64 training sentences per class take minutes; 16 per class keep every line, the settings and the result
        ("train_per_class=64, validation_per_class=24", "train_per_class=16, validation_per_class=8"),
        # the cpu preset's phase 3 budget, halved: early stopping ends it there anyway on 16 sentences per class
        ('ft = preset_config("cpu", "snips2").ft', 'ft = preset_config("cpu", "snips2").ft\nft.num_train_epochs = 10'),
        ('classifier.predict(["play the latest album by daft punk"])',
         'assert classifier.predict(["play the latest album by daft punk"]) == ["PlayMusic"]'),
    )
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102
    best = max(epoch["validation_accuracy"] for epoch in scope["report"]["epochs"])
    assert best > 0.8, scope["report"]["epochs"]  # phase 3 learns (FTConfig's paper defaults stayed near 0.44)
