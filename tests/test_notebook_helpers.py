"""The notebooks' shared helpers: a config from their parameters, and "load if saved, else train" for bodies and
runs (real, tiny training on snips2)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from conftest import tiny_config

from threephase import ThreePhaseError, links, notebook, preset_config


def test_notebook_config_applies_the_parameters_and_keeps_the_preset_for_none():
    config = notebook.notebook_config("cpu", "snips2", seed=3, variant="joint",
                                      settings={"data.train_per_class": 16, "data.test_per_class": None,
                                                "max_seq_length": 32, "ft.num_train_epochs": 2})
    preset = preset_config("cpu", "snips2")
    assert (config.seed, config.variant, config.data.train_per_class, config.max_seq_length) == (3, "joint", 16, 32)
    assert config.data.test_per_class == preset.data.test_per_class
    # A maximum of 2 epochs below the preset's minimum lowers the minimum with it.
    assert preset.ft.min_epochs > 2 and config.ft.num_train_epochs == config.ft.min_epochs == 2
    with pytest.raises(ThreePhaseError, match="Unknown setting"):
        notebook.notebook_config("cpu", "snips2", settings={"ft.learning_rat": 1e-5})


def test_cpu_defaults_shrink_only_the_cpu_preset_and_yield_to_set_parameters():
    settings = {"data.train_per_class": None, "data.test_per_class": 7}
    small = notebook.notebook_config("cpu", "snips2", settings=settings, cpu_defaults=notebook.SMALL)
    assert small.data.train_per_class == notebook.SMALL["data.train_per_class"]
    assert small.max_seq_length == notebook.SMALL["max_seq_length"] and small.data.test_per_class == 7
    paper = notebook.notebook_config("paper", "snips2", settings=settings, cpu_defaults=notebook.SMALL)
    assert paper.data.train_per_class is None and paper.data.test_per_class == 7
    assert paper.max_seq_length == preset_config("paper", "snips2").max_seq_length


def test_cl_body_reuses_the_phase_1_body_and_retrains_only_what_changed(tmp_path, tiny_data):
    config = tiny_config("three-phase", seed=2)
    body, report, loaded = notebook.cl_body(config, tiny_data, tmp_path)
    assert not loaded and report["num_pairs"] > 0
    dae_record = tmp_path / "snips2-2-dae" / "threephase_cache.json"
    cl_record = tmp_path / "snips2-2-cl" / "threephase_cache.json"
    assert dae_record.is_file() and cl_record.is_file()
    first_dae = dae_record.stat().st_mtime_ns

    again, report_again, loaded = notebook.cl_body(config, tiny_data, tmp_path)
    assert loaded and report_again == report
    text = tiny_data["test"]["text"][:3]
    assert (again.encode(text) == body.encode(text)).all()

    config.cl.learning_rate *= 2  # phase 2 changes, phase 1 does not
    _, _, loaded = notebook.cl_body(config, tiny_data, tmp_path)
    assert not loaded and dae_record.stat().st_mtime_ns == first_dae
    assert json.loads(cl_record.read_text())["settings"]["cl"]["learning_rate"] == config.cl.learning_rate


def test_cached_run_loads_a_finished_run_with_the_same_config(tmp_path, tiny_data):
    config = tiny_config("ft", seed=1, output_dir=str(tmp_path / "run"))
    result, loaded = notebook.cached_run(config, tiny_data)
    assert not loaded and 0 <= result.metrics["accuracy"] <= 1
    again, loaded = notebook.cached_run(config, tiny_data)
    assert loaded and again.metrics == json.loads((tmp_path / "run" / "metrics.json").read_text())
    texts = tiny_data["test"]["text"][:5]
    assert again.classifier.predict(texts) == result.classifier.predict(texts)  # loaded from the folder
    config.ft.learning_rate *= 2
    assert notebook.cached_run(config, tiny_data)[1] is False


class _FakeBody:
    def __init__(self, tag):
        self.tag = tag

    def save_pretrained(self, path, safe_serialization=True):
        (json_path := __import__("pathlib").Path(path, "modules.json")).write_text(json.dumps({"tag": self.tag}))
        assert json_path.is_file()


def test_cached_body_trains_once_then_loads(tmp_path, monkeypatch):
    import threephase.models

    loaded_from = []
    monkeypatch.setattr(threephase.models, "load_body", lambda path: loaded_from.append(path) or "loaded")
    calls = []

    def train():
        calls.append(1)
        return _FakeBody(len(calls)), {"loss_history": [{"step": 1, "loss": 2.0}], "wall_time_s": 1.0}

    path = tmp_path / "snips2-0-dae"
    body, report, loaded = notebook.cached_body(path, train, {"lr": 5e-5})
    assert isinstance(body, _FakeBody) and not loaded and calls == [1]
    body, report, loaded = notebook.cached_body(path, train, {"lr": 5e-5})
    assert body == "loaded" and loaded and calls == [1] and loaded_from == [str(path)]
    assert report["loss_history"] == [{"step": 1, "loss": 2.0}]
    # Other settings: the cached body is stale, so it is trained again and replaced.
    body, _, loaded = notebook.cached_body(path, train, {"lr": 1e-5})
    assert not loaded and calls == [1, 1]
    assert json.loads((path / "threephase_cache.json").read_text())["settings"] == {"lr": 1e-5}


def test_cache_key_changes_with_the_phase_settings():
    config = preset_config("cpu", "snips2", seed=0)
    key = notebook.cache_key(config, "dae")
    assert key["dae"]["deletion_ratio"] == config.dae.deletion_ratio and "cl" not in key
    assert "imbalance" in notebook.cache_key(config, "dae", "cl")
    config.data.test_per_class = 3  # test data does not change a trained body
    assert notebook.cache_key(config, "dae") == key
    config.dae.deletion_ratio = 0.3
    assert notebook.cache_key(config, "dae") != key


def test_ft_summary_reports_the_best_epoch_of_a_run():
    report = {"best_epoch": 2, "wall_time_s": 12.5, "epochs": [
        {"epoch": 1, "validation_accuracy": 0.5, "validation_macro_f1": 0.4},
        {"epoch": 2, "validation_accuracy": 0.75, "validation_macro_f1": 0.7},
        {"epoch": 3, "validation_accuracy": 0.7, "validation_macro_f1": 0.72}]}
    row = notebook.ft_summary(report, {"accuracy": 0.8, "macro_f1": 0.79})
    assert row == {"epochs": 3, "best epoch": 2, "validation accuracy": 0.75, "validation macro F1": 0.7,
                   "test accuracy": 0.8, "test macro F1": 0.79, "seconds": 12.5}


def test_ci_size_shrinks_only_the_cpu_preset(monkeypatch):
    monkeypatch.setenv(notebook.SIZE_ENV, "ci")
    tiny = notebook.notebook_config("cpu", "snips2", settings={"data.test_per_class": 9}, cpu_defaults=notebook.SMALL)
    assert tiny.data.train_per_class == notebook.CI_SIZE["data.train_per_class"] and tiny.max_seq_length == 24
    assert tiny.data.test_per_class == 9  # a parameter the reader set still wins
    assert notebook.notebook_config("paper", "snips2").data.train_per_class is None
    monkeypatch.delenv(notebook.SIZE_ENV)
    assert notebook.notebook_config("cpu", "snips2", cpu_defaults=notebook.SMALL).data.train_per_class == 16


def test_size_banner_shows_only_at_the_ci_size(monkeypatch):
    monkeypatch.setenv(notebook.SIZE_ENV, "ci")
    banner = notebook.size_banner()
    html = banner._repr_html_()
    assert notebook.SizeBanner.css_class in html and "only prove that the code runs" in html
    assert links.BOOK_URL in html and "CI-size" in repr(banner)
    for published in ("book", "BOOK ", ""):
        monkeypatch.setenv(notebook.SIZE_ENV, published)
        assert notebook.size_banner() is None and notebook.notebook_size() == "book"
    monkeypatch.delenv(notebook.SIZE_ENV)
    assert notebook.size_banner() is None


def test_an_unknown_notebook_size_is_an_error_not_the_default(monkeypatch):
    monkeypatch.setenv(notebook.SIZE_ENV, "cl")
    with pytest.raises(ThreePhaseError, match="not a notebook size.*book, ci"):
        notebook.notebook_size()


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")),
                         ids=lambda p: p.name)
def test_every_notebook_shows_the_size_banner_near_the_top(path):
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    # The install cell, then the imports cell, which ends with the banner (its last expression is displayed).
    imports = next(c for c in code if "import" in c.source and "google.colab" not in c.source)
    assert imports.source.rstrip().splitlines()[-1].startswith("size_banner()")


def test_interact_in_a_book_build_draws_the_initial_state_without_widgets(monkeypatch):
    calls = []

    def show(factor=10.0):
        calls.append(factor)

    monkeypatch.setenv(notebook.BUILD_ENV, "1")
    assert notebook.interact(show, factor=(1.0, 100.0, 1.0)) is None and calls == [10.0]
    monkeypatch.setenv(notebook.BUILD_ENV, "")
    live = notebook.interact(show, factor=(1.0, 100.0, 1.0))
    assert live.widget.children[0].value == 10.0 and live.widget.children[0].max == 100.0


def _finished_run(root: Path, config, accuracy: float) -> None:
    folder = root / "runs" / f"{config.variant}-{config.seed}"
    folder.mkdir(parents=True)
    config.output_dir, config.device = str(folder), "cpu"
    (folder / "config.json").write_text(config.to_json())
    (folder / "results.json").write_text(json.dumps({"variant": config.variant, "seed": config.seed,
                                                     "accuracy": accuracy, "parameters": {"output_dir": str(folder)}}))


def test_saved_runs_come_back_only_for_the_same_settings_and_without_their_paths(tmp_path, capsys, monkeypatch):
    from threephase import precision as precision_module

    # these records say no precision, as before the setting existed (fp32): ask on a CPU where auto means fp32
    monkeypatch.setattr(precision_module, "cpu_has_fast_bf16", lambda: False)
    for variant, seed, accuracy in [("ft", 0, 0.5), ("ft", 1, 0.6), ("joint", 0, 0.7)]:
        _finished_run(tmp_path / "out", preset_config("cpu", "snips2", variant=variant, seed=seed), accuracy)
    assert notebook.save_runs(tmp_path / "out", tmp_path / "runs.jsonl") == 3
    text = (tmp_path / "runs.jsonl").read_text()
    assert str(tmp_path) not in text  # no machine's folder in a committed file
    asked = [preset_config("cpu", "snips2", variant="joint", seed=0, output_dir="elsewhere"),
             preset_config("cpu", "snips2", variant="ft", seed=1), preset_config("cpu", "snips2", variant="ft", seed=2)]
    changed = preset_config("cpu", "snips2", variant="ft", seed=0)
    changed.ft.learning_rate *= 2
    records = notebook.saved_runs(tmp_path / "runs.jsonl", [*asked, changed])
    assert [r and r["accuracy"] for r in records] == [0.7, 0.6, None, None]  # where it ran does not count
    assert "2 of 4 runs saved in runs.jsonl" in capsys.readouterr().out
    assert notebook.saved_runs(tmp_path / "missing.jsonl", asked) == [None] * 3
    with pytest.raises(ThreePhaseError, match="No finished runs"):
        notebook.save_runs(tmp_path / "empty", tmp_path / "none.jsonl")
    assert not (tmp_path / "none.jsonl").exists()


TABLE4_RUNS = {"fp32": "table4_snips2_cpu_runs.jsonl", "bf16": "table4_snips2_cpu_bf16_runs.jsonl"}


@pytest.mark.parametrize("precision", TABLE4_RUNS)
def test_the_committed_table4_runs_are_the_cpu_preset_as_it_is_now(monkeypatch, precision):
    # Notebook 05 and the results page show these runs, in the precision `auto` means on the machine that builds the
    # book (bf16 on a CPU with AMX, fp32 elsewhere): a change to the cpu preset must come with a rerun of both
    # (`reproduce --table 4 --datasets snips2 --preset cpu --seeds 3`, then copy table4_runs.jsonl over the one of
    # the precision it ran in).
    from threephase import precision as precision_module

    monkeypatch.setattr(precision_module, "cpu_has_fast_bf16", lambda: precision == "bf16")
    results = Path(__file__).resolve().parents[1] / "book" / "results"
    variants = ["three-phase", "joint", "dae-ft", "cl-ft", "extra-imb", "no-imb", "ft"]
    configs = [preset_config("cpu", "snips2", variant=v, seed=s, device="cpu") for v in variants for s in range(3)]
    records = notebook.saved_runs([results / name for name in TABLE4_RUNS.values()], configs)
    assert all(r is not None for r in records)
    assert [(r["variant"], r["seed"]) for r in records] == [(c.variant, c.seed) for c in configs]
    assert {r.get("precision", "fp32") for r in records} == {precision}
    # each file holds one precision, so that its table is one precision's
    only = notebook.saved_runs(results / TABLE4_RUNS[precision], configs)
    assert all(r is not None for r in only)


@pytest.mark.parametrize("suffix", ["", "_bf16"])
def test_the_committed_table4_is_what_the_code_writes_from_the_committed_runs(suffix):
    # the results page includes table4_snips2_cpu.md (and _bf16.md): their numbers come from the runs files
    from threephase.grid.tables import aggregate, to_markdown

    results = Path(__file__).resolve().parents[1] / "book" / "results"
    records = [json.loads(line)["record"] for line in (results / f"table4_snips2_cpu{suffix}_runs.jsonl").read_text()
               .splitlines() if line.strip()]
    assert (results / f"table4_snips2_cpu{suffix}.md").read_text() == to_markdown(aggregate(records, table=4))


def test_a_notebook_s_run_folder_differs_by_size(monkeypatch):
    # A CI-size build left runs/reproduce behind, and the published-size build in the same clone refused to resume it
    # ("started with other settings"): each size gets its own folder.
    monkeypatch.setenv(notebook.SIZE_ENV, "ci")
    ci = notebook.size_folder("reproduce")
    monkeypatch.setenv(notebook.SIZE_ENV, "book")
    assert notebook.size_folder("reproduce") != ci and ci.startswith("runs/reproduce")
