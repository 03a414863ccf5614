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


def _book_site():
    import importlib.util

    spec = importlib.util.spec_from_file_location("book_site", ROOT / "book" / "_ext" / "book_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pages_state_preset_values_through_the_library():
    # a page writes {{ cpu_ft_epochs }}: the build fills it from threephase.presets, so it cannot drift
    from threephase.presets import book_substitutions, preset_config

    defined = book_substitutions() | _book_site().result_substitutions()
    used = {name for page in PAGES for name in re.findall(r"\{\{\s*(\w+)\s*\}\}", page.read_text())}
    assert used and used <= set(defined), f"undefined substitutions: {sorted(used - set(defined))}"
    cpu = preset_config("cpu", "snips2")
    assert defined["cpu_ft_epochs"] == str(cpu.ft.num_train_epochs) and defined["cpu_train"] == str(
        cpu.data.max_train_samples) and defined["paper_ft_patience"] == str(preset_config("paper", "snips2").ft.patience)


# A hand-typed preset value, as the book wrote them: (pattern with the number, the setting it states).
STATED = [(r"patience (\d+)", "ft.patience"), (r"up to (\d+) (?:FT )?epochs", "ft.num_train_epochs"),
          (r"at most (\d+) epochs", "ft.num_train_epochs"), (r"(\d+) epochs with patience", "ft.num_train_epochs"),
          (r"at least (\d+) epochs", "ft.min_epochs"), (r"cpu: (\d+)\b(?=[^\n]*epoch|)", "ft.num_train_epochs"),
          (r"subset of (\d+)", "data.max_train_samples"), (r"on (\d+) training (?:texts|sentences)",
                                                            "data.max_train_samples"),
          (r"deletes? (0\.\d+) of the words", "dae.deletion_ratio"), (r"max(?:imum)? length (\d+)", "max_seq_length")]


def _statements() -> list[tuple[str, str]]:
    """(where, sentence) for every sentence of the pages, the notebooks' Markdown and the notebooks' comments."""
    found = []
    for page in PAGES:
        found += [(page.name, s) for s in re.split(r"(?<=[.!?])\s+|\n\s*\n", page.read_text())]
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                found += [(path.name, s) for s in re.split(r"(?<=[.!?])\s+|\n\s*\n", cell.source)]
            else:
                found += [(path.name, line) for line in cell.source.splitlines() if "#" in line]
    return found


def _value(config, setting: str):
    for part in setting.split("."):
        config = getattr(config, part)
    return config


def test_stated_preset_values_agree_with_the_presets():
    from threephase.presets import preset_config

    presets = {"cpu": preset_config("cpu", "snips2"), "paper": preset_config("paper", "snips2")}
    wrong = []
    for where, sentence in _statements():
        preset = "cpu" if re.search(r"`cpu`|\bcpu( preset|:)", sentence) else (
            "paper" if re.search(r"`paper` preset", sentence) else None)
        if preset is None:
            continue
        for pattern, setting in STATED:
            if setting == "ft.num_train_epochs" and pattern.startswith("cpu") and "epoch" not in sentence:
                continue
            for number in re.findall(pattern, sentence):
                if float(number) != float(_value(presets[preset], setting)):
                    wrong.append(f"{where}: {number} for the {preset} preset's {setting} "
                                 f"({_value(presets[preset], setting)}): {' '.join(sentence.split())[:100]}")
    assert wrong == []


def test_exercises_ask_for_a_change():
    # "Set config.ft.class_weights = 'balanced'" on a notebook whose preset has it already changes nothing; "raise X to
    # 4" where X is 4 already raises nothing
    from threephase.notebook import SMALL
    from threephase.presets import preset_config

    cpu = preset_config("cpu", "snips2")
    same = []
    for path in NOTEBOOKS:
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        exercises = text.split("## Exercises", 1)[-1]
        for setting, value in re.findall(r"`config\.([\w.]+) = ([^`]+)`", exercises):
            if str(_value(cpu, setting)).strip("'\"") == value.strip("'\""):
                same.append(f"{path.name}: config.{setting} = {value} is the cpu preset's value already")
        for setting, value in re.findall(r"[Rr]aise [^(`]*\(`config\.([\w.]+)`\) to (\d+)", exercises):
            current = SMALL.get(setting, _value(cpu, setting))
            if float(value) <= float(current):
                same.append(f"{path.name}: raising {setting} to {value}, which is {current} here")
    assert same == []
