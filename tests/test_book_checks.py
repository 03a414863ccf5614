"""The book build's own checks: the execution-time report (scripts/check_execution.py) fails on a slow notebook, and
the book's Sphinx extension sets the build flag for the kernels and keeps launch buttons off non-notebook pages."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cache_with(build: Path, seconds: dict[str, float]):
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(build / ".jupyter_cache"))
    for name, s in seconds.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"x = '{name}'")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        cache.cache_notebook_bundle(CacheBundleIn(nb, str(ROOT / name), data={"execution_seconds": s}),
                                    check_validity=False)


def test_check_execution_fails_on_a_notebook_over_half_the_timeout(tmp_path, monkeypatch):
    check = _load(ROOT / "scripts" / "check_execution.py")
    config = tmp_path / "_config.yml"
    config.write_text("execute:\n  timeout: 100\n")
    _cache_with(tmp_path, {"notebooks/fast.ipynb": 12.0, "notebooks/stalled.ipynb": 51.0})
    monkeypatch.chdir(ROOT)
    assert check.main(["--build", str(tmp_path), "--config", str(config)]) == 1
    report = json.loads((tmp_path / "execution_times.json").read_text())
    assert report["limit_s"] == 50 and report["notebooks"] == {"notebooks/fast.ipynb": 12.0,
                                                               "notebooks/stalled.ipynb": 51.0}
    assert check.main(["--build", str(tmp_path), "--config", str(config), "--max-seconds", "60"]) == 0
    assert check.main(["--build", str(tmp_path / "none"), "--config", str(config)]) == 2


class _App:
    def __init__(self):
        self.handlers = {}

    def connect(self, event, handler, priority=500):
        self.handlers[event] = handler


def test_book_extension_flags_the_build_for_the_kernels(monkeypatch):
    from threephase import notebook

    monkeypatch.setenv(notebook.BUILD_ENV, "x")  # so that monkeypatch restores the variable's absence afterwards
    monkeypatch.delenv(notebook.BUILD_ENV)
    ext = _load(ROOT / "book" / "_ext" / "book_site.py")
    assert ext.BUILD_ENV == notebook.BUILD_ENV
    ext.setup(_App())
    assert os.environ[notebook.BUILD_ENV] == "1" and notebook.static_widgets()


def test_book_extension_turns_the_kernels_progress_bars_off(monkeypatch):
    from threephase.training import progress_bars_off

    ext = _load(ROOT / "book" / "_ext" / "book_site.py")
    for name in ext.PROGRESS_BARS_OFF:
        monkeypatch.setenv(name, "x")  # so that monkeypatch restores the variable's absence afterwards
        monkeypatch.delenv(name)
    assert not progress_bars_off()
    ext.setup(_App())
    assert {name: os.environ[name] for name in ext.PROGRESS_BARS_OFF} == ext.PROGRESS_BARS_OFF
    assert progress_bars_off()


def test_the_book_loads_no_widget_script_and_no_thebe():
    # Offline-first: myst-nb's default widget scripts come from two CDNs, and sphinx-thebe (no Thebe button here)
    # declared THEBE_JS_URL twice on every page
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert config["nb_ipywidgets_js"] == {}
    assert "sphinx_thebe" not in config["extensions"] and "book_site" in config["extensions"]
    assert config["nb_render_markdown_format"] == "gfm"


@pytest.mark.parametrize("source, kept", [("book/performance.md", False), ("notebooks/01_data.ipynb", True)])
def test_launch_buttons_only_on_notebook_pages(source, kept):
    ext = _load(ROOT / "book" / "_ext" / "book_site.py")
    app = type("App", (), {"env": type("Env", (), {"doc2path": staticmethod(lambda name: source)})()})()
    context = {"header_buttons": [{"label": "launch-buttons"}, {"label": "download-buttons"}]}
    ext._notebook_pages_only(app, "page", "page.html", context, None)
    assert [b["label"] for b in context["header_buttons"]] == (["launch-buttons"] if kept else []) + ["download-buttons"]
