"""The README's Python blocks run as pasted (offline: HF_HUB_OFFLINE=1 and $THREEPHASE_DATA_DIR, as in conftest).

Each block trains, and at its own size takes minutes on 2 CPU cores, so each runs as a reduced copy: the same code
with smaller sizes, made by replacements that must each match the README (a changed block fails here until its
copy is updated). What a reduced copy leaves out is said where it is made.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from threephase import ThreePhaseError

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
TINY = ('{"data.max_train_samples": 28, "data.max_validation_samples": 14, "data.max_test_samples": 14, '
        '"data.min_per_class": 2, "max_seq_length": 32, "ft.num_train_epochs": 1, "ft.min_epochs": 1}')


def reduced(block: str, *replacements: tuple[str, str]) -> str:
    for old, new in replacements:
        assert old in block, f"the README block changed: {old!r} is gone; update tests/test_readme.py"
        block = block.replace(old, new)
    return block


def block_starting(text: str) -> str:
    found = [block for block in BLOCKS if block.startswith(text)]
    assert len(found) == 1, f"no README block starts with {text!r}"
    return found[0]


def test_every_python_block_is_run_here():
    starts = ("from threephase import ThreePhaseClassifier", "from datasets import Dataset",
              "from threephase import CLConfig")
    assert len(BLOCKS) == len(starts) and all(any(b.startswith(s) for b in BLOCKS) for s in starts)


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
    block = block_starting("from threephase import CLConfig")
    code = reduced(
        block,
        # 64 training sentences per class take minutes; 16 per class keep every line, the settings and the result
        ("train_per_class=64, validation_per_class=24", "train_per_class=16, validation_per_class=8"),
        ('classifier.predict(["play the latest album by daft punk"])',
         'assert classifier.predict(["play the latest album by daft punk"]) == ["PlayMusic"]'),
    )
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102
    best = max(epoch["validation_accuracy"] for epoch in scope["report"]["epochs"])
    assert best > 0.8, scope["report"]["epochs"]  # phase 3 learns (FTConfig's paper defaults stayed near 0.44)
