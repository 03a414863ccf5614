"""The book's copy: one notation for class sizes, a glossary of the fixed vocabulary in the table of contents, each
page's exercises its own (no verbatim repeats), and the method page's figures present with alt text."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "book").glob("*.md"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
VOCABULARY = ["body", "head", "phase 1 / DAE", "phase 2 / CL", "phase 3 / FT", "Joint", "variant", "resize ratio",
              "pair", "pair score", "deletion ratio", "preset", "nats", "macro-F1", "silhouette", "early stopping",
              "paired difference", "confidence interval", "Holm correction"]


def _texts() -> dict[str, str]:
    texts = {page.name: page.read_text() for page in PAGES}
    for path in NOTEBOOKS:
        texts[path.name] = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
    return texts


def test_class_sizes_are_written_n_k_everywhere():
    for name, text in _texts().items():
        assert not re.search(r"\bx_k\b|\\tilde\{?x\}?_k|\bn_c\b", text), f"{name} writes a class size as x_k or n_c"


def test_glossary_defines_the_vocabulary_and_is_in_the_toc():
    glossary = (ROOT / "book" / "glossary.md").read_text()
    terms = {line.strip() for line in glossary.splitlines() if line and not line.startswith((" ", "#", ":"))}
    missing = [term for term in VOCABULARY if not any(t == term or t.startswith(term + " (") for t in terms)]
    assert not missing, f"the glossary lacks {missing}"
    toc = (ROOT / "_toc.yml").read_text().splitlines()
    assert "- file: book/glossary" in [line.strip() for line in toc]


def _exercises(text: str) -> list[str]:
    section = text.split("## Exercises", 1)[1] if "## Exercises" in text else ""
    section = re.split(r"\n#{1,2} ", section, maxsplit=1)[0]
    items = re.split(r"\n\d+\. ", "\n" + section)[1:]
    return [" ".join(item.split()).lower() for item in items]


def test_no_exercise_is_repeated_on_another_page():
    seen: dict[str, str] = {}
    for name, text in _texts().items():
        for item in _exercises(text):
            key = " ".join(re.findall(r"[a-z0-9]+", item)[:10])  # the opening words say what is asked
            assert key not in seen, f"{name} repeats an exercise of {seen.get(key)}: {item[:80]}"
            seen[key] = name


def test_method_page_embeds_its_figures_with_alt_text():
    method = (ROOT / "book" / "method.md").read_text()
    figures = re.findall(r"```\{figure\} (\S+)\n((?::[^\n]*\n)*)", method)
    paths = {path for path, _ in figures}
    assert {"images/resize_curve.svg", "images/tsdae_bottleneck.svg", "images/ft_schedule.svg",
            "images/pair_cosine.svg"} <= paths
    for path, options in figures:
        assert (ROOT / "book" / path).is_file(), f"{path} is not committed"
        assert ":alt:" in options, f"{path} has no alt text"
