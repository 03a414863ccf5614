"""The setfit baseline: SetFit 1.x (the baselines extra, in the dev extra too) through the same run command."""

import json
import sys

import numpy as np
import pytest
import torch
from conftest import tiny_config

from threephase import ThreePhaseClassifier, ThreePhaseError, load_body, run
from threephase.baselines import setfit_iterations
from threephase.cli import main
from threephase.models import packaged_model_path


def test_setfit_runs_tunes_the_body_and_writes_a_record_that_reloads(tiny_data, tmp_path):
    output = tmp_path / "run"
    config = tiny_config("setfit", output_dir=str(output))
    result = run(config, data=tiny_data)

    saved = json.loads((output / "metrics.json").read_text())
    assert saved["variant"] == "setfit" and set(saved["phases"]) == {"setfit"}
    assert saved["accuracy"] == result.metrics["accuracy"] > 1 / 7 + 0.3  # chance is 1/7
    report = saved["phases"]["setfit"]
    n, classes = len(tiny_data["train"]), len(set(tiny_data["train"]["label"]))
    iterations = setfit_iterations(n, classes, config.cl.pair_multiplier)
    assert report["num_iterations"] == iterations and report["num_pairs"] == 2 * iterations * n
    assert report["steps"] == -(-report["num_pairs"] // config.cl.per_device_train_batch_size)  # one epoch
    assert report["loss_history"] and all(np.isfinite(e["loss"]) for e in report["loss_history"])
    assert 0 < report["train_accuracy"] <= 1 and report["setfit_version"] >= "1.2"
    assert json.loads((output / "config.json").read_text())["variant"] == "setfit"
    assert not (output / "phases").exists()
    card = (output / "classifier" / "README.md").read_text()
    assert "`setfit`: baseline: SetFit" in card and "a single linear layer (a logistic regression)" in card

    again = ThreePhaseClassifier.from_pretrained(output)
    assert again.head.settings["hidden_size"] is None and again.label_names == result.classifier.label_names
    texts = tiny_data["test"]["text"][:12]
    assert again.predict(texts) == result.classifier.predict(texts)
    assert np.allclose(again.predict_proba(texts), result.classifier.predict_proba(texts), atol=1e-6)

    # The contrastive step tuned the body: its weights left the pre-trained ones.
    pretrained = load_body(packaged_model_path()).state_dict()
    tuned = again.body.state_dict()
    assert tuned.keys() == pretrained.keys()
    assert any(not torch.equal(tuned[k].cpu(), v.cpu()) for k, v in pretrained.items())


def test_setfit_iterations_match_phase_2s_pair_budget():
    assert setfit_iterations(56, 7, 1) == 1  # phase 2: 1 × 2 × 56 = 112 pairs; SetFit: 2 × 1 × 56
    assert setfit_iterations(100, 2, 12) == 6  # 12 × 1 × 100 = 1200 = 2 × 6 × 100
    assert setfit_iterations(10, 2, 0.1) == 1  # at least one


@pytest.fixture
def no_setfit(monkeypatch):
    """``import setfit`` fails, as without the baselines extra."""
    for name in [m for m in sys.modules if m == "setfit" or m.startswith("setfit.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "setfit", None)


def test_setfit_without_the_extra_fails_early_and_names_the_fix(no_setfit, tmp_path, monkeypatch):
    import threephase.pipeline as pipeline

    def must_not_load(*args, **kwargs):
        raise AssertionError("the data was loaded before the missing extra was reported")

    monkeypatch.setattr(pipeline, "load_data", must_not_load)
    output = tmp_path / "run"
    with pytest.raises(ThreePhaseError, match=r'pip install "threephase\[baselines\]"'):
        run(tiny_config("setfit", output_dir=str(output)))
    assert not output.exists()


def test_the_cli_reports_the_missing_extra(no_setfit, tmp_path, capsys, data_dir):
    code = main(["run", "--dataset", "snips2", "--data-dir", data_dir, "--variant", "setfit", "--preset", "cpu",
                 "--output", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "SetFit" in err and 'pip install "threephase[baselines]"' in err


def test_setfit_is_a_variant_everywhere():
    from threephase import config, pipeline
    from threephase.grid import tables

    assert set(config.VARIANTS) == set(pipeline.VARIANTS) and pipeline.VARIANTS["setfit"].baseline
    assert tables.VARIANT_TITLES["setfit"] == "SetFit"
