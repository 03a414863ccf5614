"""Sphinx extension of the book (listed under ``sphinx.local_extensions`` in ``_config.yml``).

- MathJax comes from the build itself (``mathjax_path`` points into a static folder that ``scripts/fetch_mathjax.sh``
  fills): a build without it would show raw LaTeX offline, so it stops with the command that fixes it.
- The kernels the build starts get ``$THREEPHASE_BOOK_BUILD=1`` (threephase.notebook.BUILD_ENV): the notebooks then
  draw their widgets' initial state as static outputs instead of creating ipywidgets, whose cells can stall a
  headless execution until the cell timeout (notebook 01 once sat idle for 939 s).
- The kernels also get the progress-bar switches of tqdm and of the Hub libraries (:data:`PROGRESS_BARS_OFF`): a bar
  saved in a page is frozen where the run ended ("Epoch 8/20" after early stopping), and a notebook's bar is an
  ipywidget whose scripts would come from a CDN. The Hub libraries' switches silence the loading bars; tqdm's own
  notebook bar ignores its switch, so the phases read it (threephase.logs.progress_bars_off) and turn the
  trainer's bar off themselves, keeping its per-step losses in the run's report instead of printing them.
- The presets' values that the pages state come from the library, as MyST substitutions
  (:func:`threephase.presets.book_substitutions`): a page writes ``{{ cpu_ft_epochs }}``, never the number.
- Launch buttons (Colab) only on pages made from a ``.ipynb`` file: a Markdown page with code cells (a MyST
  notebook, e.g. the performance page) has a kernelspec, so the theme would offer to open its ``.md`` in Colab,
  which cannot open it.
"""

from __future__ import annotations

import os
from pathlib import Path

from sphinx.errors import ConfigError


def _check_mathjax(app, config):
    path = str(config.mathjax_path or "")
    if "://" in path or path.startswith("//"):
        raise ConfigError(f"mathjax_path is a web address ({path}); the book serves MathJax itself: set it to "
                          "the file inside html_static_path that scripts/fetch_mathjax.sh fetches")
    roots = [Path(app.confdir, p) for p in config.html_static_path]
    if not any((root / path).is_file() for root in roots):
        raise ConfigError(f"MathJax ({path}) is in none of html_static_path {list(config.html_static_path)}: "
                          "run scripts/fetch_mathjax.sh (it fetches the pinned npm package), then build again")


RESULTS = Path(__file__).resolve().parents[1] / "results"


def result_substitutions(results: Path = RESULTS) -> dict[str, str]:
    """The numbers the results page quotes in its prose, read from the committed Table 4 file and, for the paper's
    own, from the library's copy of the paper's Table 4: ``{{ table4_cpu_ft_mean }}``, never a retyped number."""
    import pandas as pd

    from threephase.grid.tables import paper_accuracy
    from threephase.presets import PAPER_MODELS

    row = pd.read_csv(results / "table4_snips2_cpu.csv").iloc[0]
    values = {"table4_cpu_ft_mean": row["ft mean"], "table4_cpu_ft_std": row["ft std"],
              "table4_cpu_best_mean": max(row[c] for c in row.index if c.endswith(" mean")),
              "table4_paper_ft": paper_accuracy(4, "snips2", PAPER_MODELS["minilm"], "ft"),
              "table4_paper_three_phase": paper_accuracy(4, "snips2", PAPER_MODELS["minilm"], "three-phase"),
              "table3_paper_sst2_roberta_three_phase": paper_accuracy(3, "sst2", PAPER_MODELS["roberta"], "three-phase"),
              "table3_paper_sst2_roberta_ft": paper_accuracy(3, "sst2", PAPER_MODELS["roberta"], "ft")}
    return {name: f"{value:.2f}" for name, value in values.items()}


def _preset_substitutions(app, config):
    from threephase.presets import book_substitutions

    config.myst_substitutions = {**book_substitutions(), **result_substitutions(),
                                 **(config.myst_substitutions or {})}


def _notebook_pages_only(app, pagename, templatename, context, doctree):
    if Path(app.env.doc2path(pagename)).suffix == ".ipynb":
        return
    buttons = context.get("header_buttons")
    if buttons:
        context["header_buttons"] = [b for b in buttons if b.get("label") != "launch-buttons"]


BUILD_ENV = "THREEPHASE_BOOK_BUILD"
# Each library's own setting: tqdm's (text bars; the phases pass it on to the trainer), huggingface_hub's
# (transformers' loading bars) and datasets' (its map and download bars). They are read when the libraries are
# imported, which in a kernel comes after this.
PROGRESS_BARS_OFF = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def setup(app):
    os.environ.setdefault(BUILD_ENV, "1")  # the notebooks' kernels inherit the build's environment
    for name, value in PROGRESS_BARS_OFF.items():
        os.environ.setdefault(name, value)
    app.connect("config-inited", _check_mathjax)
    app.connect("config-inited", _preset_substitutions)
    # After sphinx-book-theme's add_launch_buttons (priority 501).
    app.connect("html-page-context", _notebook_pages_only, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
