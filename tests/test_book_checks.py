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
    from threephase.logs import progress_bars_off

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


def _seen(**extra):
    return {"raw": [], "math": 0, "unrendered": 0, "mjx": 0, "tex_errors": [], "broken_images": [], "banner": 0,
            **extra}


def test_check_book_fails_on_what_a_reader_cannot_read():
    check = _load(ROOT / "scripts" / "check_book.py")
    seen = _seen(
        paragraphs=["| variant | accuracy |\n| — | — |\n| FT | 97.10 |", "a | b | c without a separator row",
                    "the table below"],
        pngs=[{"src": "fig8.png", "natural": 2256, "shown": 680.0}, {"src": "ok.png", "natural": 700, "shown": 680.0}],
        captions=[{"text": "Fig. 1", "color": "rgb(72, 86, 107)", "background": "rgb(255, 255, 255)"},
                  {"text": "Fig. 2", "color": "rgb(34, 34, 34)", "background": "rgb(255, 255, 255)"},
                  {"text": "Fig. 3", "color": "rgb(34, 34, 34)", "background": "rgb(255, 255, 255)", "weight": 300}],
        text_color="rgb(34, 34, 34)",
        cut_outputs=['{"accuracy": 0.97, "macro_precision"'],
        progress_bars=["Epoch 8/20"],
    )
    problems = check.problems_of(seen, "notebooks/05.html", math_page=False, size="",
                                 refused=["https://cdnjs.cloudflare.com/require.min.js"],
                                 js_errors=["Identifier 'THEBE_JS_URL' has already been declared"])
    assert [p.split(":")[0] for p in problems] == [
        "raw Markdown table in the text", "figure too small to read", "caption 'Fig. 1' has contrast 7.4",
        "caption 'Fig. 3' is set in a light font (weight 300)", "output line cut at the right edge",
        "a frozen progress bar in an output", "request off this machine (refused "
        "offline)", "JavaScript error"]
    assert "fig8.png drawn at 0.30" in problems[1]
    assert check.problems_of(_seen(), "notebooks/05.html", math_page=False, size="") == []
    assert check.contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(21)


def test_check_book_reads_a_page_in_chromium(tmp_path):
    # the page script itself (INSPECT) runs, and sees what problems_of judges; skipped where no Chromium is
    check = _load(ROOT / "scripts" / "check_book.py")
    pytest.importorskip("playwright")
    import shutil

    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not chromium:
        pytest.skip("no Chromium binary")
    from PIL import Image

    Image.new("RGB", (1600, 200), "white").save(tmp_path / "wide.png")
    (tmp_path / "page.html").write_text(
        "<html><body><article><p>| a | b |\n| --- | --- |</p><figure><img src='wide.png' style='width:400px'>"
        "<figcaption style='color: #aaa'>Fig. 1 faint</figcaption></figure><p>text</p>"
        "<div class='cell_output'><pre style='width:100px;overflow:auto'>" + "x" * 300 + "</pre></div>"
        "<div class='cell_output'><pre>Epoch 8/20 <progress value='8' max='20'></progress></pre></div>"
        "<script src='https://cdn.example.org/x.js'></script></article></body></html>")
    server, base = check.serve(tmp_path)
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=check.CHROMIUM_ARGS)
            page = browser.new_page()
            problems = check.check_page(page, base + "page.html", "notebooks/page.html", math_page=False, size="")
            browser.close()
    finally:
        server.shutdown()
    assert [p.split(":")[0] for p in problems] == [
        "raw Markdown table in the text", "figure too small to read", "caption 'Fig. 1 faint' has contrast 2.3",
        "output line cut at the right edge", "a frozen progress bar in an output",
        "request off this machine (refused offline)"]


def test_both_builds_read_the_book_offline():
    # .ci/run (CI size) and the Pages workflow (the published size) both run the reader's check after the build
    for path in (ROOT / ".ci" / "run", ROOT / ".github" / "workflows" / "book.yml"):
        text = path.read_text()
        assert text.index("python scripts/check_book.py") > text.index("jupyter-book build"), path


def test_every_progress_bar_of_the_library_obeys_the_book_s_switch():
    # tqdm's notebook bar ignores $TQDM_DISABLE, and a bar saved in a page is a frozen widget: every tqdm the library
    # opens passes progress_bars_off() on (notebook 07's compare() left one in the CI build before)
    import ast

    for path in sorted((ROOT / "threephase").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "tqdm":
                disable = next((k.value for k in node.keywords if k.arg == "disable"), None)
                assert disable is not None and "progress_bars_off" in ast.unparse(disable), \
                    f"{path.relative_to(ROOT)}:{node.lineno}: tqdm(...) without disable=...progress_bars_off()"
