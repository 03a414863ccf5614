"""The notebooks: committed without outputs, one papermill `parameters` cell, a Colab badge, Summary and Exercises;
and a papermill run of notebook 05's training path, which the book build does not run (notebook 06's papermill run,
with its parameters recorded, is tests/test_reproduce.py's --notebooks test)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert {"00_quickstart.ipynb", "05_joint_and_ablations.ipynb", "06_reproduce.ipynb"} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_structure(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code", "exactly one cell tagged `parameters`"
    names = {t.id for node in ast.parse(tagged[0].source).body if isinstance(node, ast.Assign) for t in node.targets}
    assert {"dataset", "model", "preset", "seed", "device"} <= names, f"parameters cell sets only {sorted(names)}"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    badge = f"https://colab.research.google.com/github/threephase/threephase/blob/main/notebooks/{path.name}"
    assert badge in nb.cells[0].source and "colab-badge.svg" in nb.cells[0].source
    headings = [line.strip() for line in markdown.splitlines() if line.startswith("#")]
    assert "## Summary" in headings and "## Exercises" in headings
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_notebook_chooses_by_test_scores(path):
    # The test split is read once, to report; a choice (a body, a setting, a variant) is made on validation.
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert not re.search(r"\[[\"']test [^\"']*[\"']\]\s*\.\s*(idxmax|idxmin|argmax|argmin)\(", code)


@pytest.mark.slow
def test_ablations_notebook_trains_what_is_not_saved(tmp_path, data_dir, monkeypatch):
    # A book build loads notebook 05's saved runs, so its training path is run here: 2 variants, 1 seed, tiny.
    import papermill

    monkeypatch.setenv("THREEPHASE_DATA_DIR", data_dir)
    source = next(p for p in NOTEBOOKS if p.name == "05_joint_and_ablations.ipynb")
    papermill.execute_notebook(
        str(source), str(tmp_path / "out.ipynb"), kernel_name="python3", cwd=str(source.parent), progress_bar=False,
        parameters={"use_saved_runs": False, "variants": ["joint", "ft"], "num_seeds": 1, "train_per_class": 4,
                    "validation_per_class": 2, "test_per_class": 3, "ft_epochs": 1, "max_seq_length": 16,
                    "cache_dir": str(tmp_path / "cache")},
    )
    trained = sorted(p.parent.name for p in (tmp_path / "cache").glob("*/metrics.json"))
    assert trained == ["snips2__all-MiniLM-L6-v2__ft__seed0", "snips2__all-MiniLM-L6-v2__joint__seed0"]
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert "trained" in json.dumps([c.get("outputs") for c in executed.cells])
