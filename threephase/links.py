"""The one place for the project's addresses: the repository, its branch, the published book, and what is derived
from them (the Colab and GitHub links of a notebook, the install command from the repository).

The notebooks' badge and install cells, ``_config.yml`` (``repository.url``, ``repository.branch``), ``pyproject.toml``
and the README write these addresses out, because they are read where this package is not installed yet;
``tests/test_links.py`` checks that each of them says the same as this module.
"""

from __future__ import annotations

REPOSITORY_URL = "https://github.com/threephase/threephase"
BRANCH = "main"
BOOK_URL = "https://threephase.github.io/threephase"
COLAB_URL = "https://colab.research.google.com"
# The badge image ships with the book, so that it shows without a network (Colab's own badge is an image on its site).
BADGE_IMAGE = "book/images/colab-badge.svg"


def github_url(path: str) -> str:
    """The page of ``path`` (relative to the repository root, e.g. ``notebooks/00_quickstart.ipynb``) on GitHub."""
    return f"{REPOSITORY_URL}/blob/{BRANCH}/{path}"


def colab_url(path: str) -> str:
    """The address that opens the repository file ``path`` in Colab."""
    return f"{COLAB_URL}/github/{REPOSITORY_URL.removeprefix('https://github.com/')}/blob/{BRANCH}/{path}"


def install_requirement(extras: str = "offline") -> str:
    """The pip requirement that installs this package from the repository, with ``extras`` (``""`` for none)."""
    name = f"threephase[{extras}]" if extras else "threephase"
    return f"{name} @ git+{REPOSITORY_URL}"


def badge_markdown(path: str, image: str = f"../{BADGE_IMAGE}") -> str:
    """The Markdown line at the top of a notebook: an "Open in Colab" badge (``image`` relative to the notebook)
    and a "View on GitHub" link."""
    return f"[![Open In Colab]({image})]({colab_url(path)}) [View on GitHub]({github_url(path)})"
