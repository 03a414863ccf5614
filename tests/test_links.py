"""One place for the repository URL (threephase.links): the notebooks' Colab badges and install cells, the book's
launch and repository buttons (_config.yml), pyproject.toml and the README all say what threephase.links says."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from threephase import links

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_badge_and_install_cell_use_the_one_url(path):
    nb = nbformat.read(path, as_version=4)
    relative = path.relative_to(ROOT).as_posix()
    assert links.badge_markdown(relative) in nb.cells[0].source, "the badge line is links.badge_markdown(path)"
    image = re.search(r"\[!\[[^]]*\]\(([^)]+)\)", nb.cells[0].source).group(1)
    assert "://" not in image and (path.parent / image).is_file(), "the badge image ships with the book (offline)"
    install = f'%pip install -q "{links.install_requirement("offline")}"'
    assert any(install in c.source for c in nb.cells if c.cell_type == "code"), f"no install cell: {install}"


def test_config_uses_the_one_url():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repository = config["repository"]
    assert repository["url"] == links.REPOSITORY_URL and repository["branch"] == links.BRANCH
    # "." (or any "./" form) puts "/./" into the launch button's address
    assert repository.get("path_to_book", "") == ""
    assert config["launch_buttons"]["colab_url"] == links.COLAB_URL
    assert config["html"]["use_repository_button"] is True


def test_pyproject_and_readme_use_the_one_url():
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Homepage"] == links.REPOSITORY_URL and urls["Documentation"] == links.BOOK_URL
    readme = (ROOT / "README.md").read_text()
    assert links.REPOSITORY_URL in readme and links.install_requirement("offline") in readme


def test_no_other_address_of_the_repository():
    # Any hand-written link to the repository must start with the one URL (a second spelling, e.g. another owner
    # or branch, is what goes stale).
    tracked = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.yml", "*.toml", "*.ipynb"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    owner_repo = links.REPOSITORY_URL.removeprefix("https://github.com/")
    bad = []
    for name in tracked:
        text = (ROOT / name).read_text(errors="replace")
        for match in re.finditer(r"github\.com/[\w.-]+/threephase[^\s\"')\]]*", text):
            found = match.group(0)
            if not found.startswith(f"github.com/{owner_repo}") or (
                    "/blob/" in found and f"/blob/{links.BRANCH}/" not in found):
                bad.append(f"{name}: {found}")
    assert not bad, bad


def test_link_helpers():
    assert links.colab_url("notebooks/x.ipynb") == (
        "https://colab.research.google.com/github/threephase/threephase/blob/main/notebooks/x.ipynb")
    assert links.github_url("notebooks/x.ipynb") == "https://github.com/threephase/threephase/blob/main/notebooks/x.ipynb"
    assert links.install_requirement("") == "threephase @ git+https://github.com/threephase/threephase"


def test_pages_workflow_builds_at_the_published_size():
    from threephase import notebook

    for workflow in (ROOT / ".github" / "workflows").glob("*.yml"):
        text = workflow.read_text()
        if "jupyter-book build" not in text:
            continue
        env = yaml.safe_load(text)["jobs"]["build"]["env"]
        assert env[notebook.SIZE_ENV] == notebook.PUBLISHED_SIZE and notebook.PUBLISHED_SIZE in notebook.SIZES
        assert "scripts/fetch_mathjax.sh" in text, "the published book serves MathJax itself too"
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"{notebook.SIZE_ENV}=ci" in ci and "ci" in notebook.SIZES
