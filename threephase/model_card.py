"""The model card (README.md) written beside every saved classifier and pushed with it.

The card says what the repository holds, truthfully: a sentence-transformers model (the body) at its root, which
``SentenceTransformer`` loads on its own, and a head that only threephase reads. Its usage snippets run as written
once the repository id is filled in (a test executes them against a saved folder).
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import ModelCardData

from .links import REPOSITORY_URL, install_requirement

REPO_ID_PLACEHOLDER = "your-name/your-model"  # a card saved before any push names no repository yet
INSTALL = f'pip install "{install_requirement("")}"'

_PHASES = {
    "three-phase": "phase 1 / DAE → phase 2 / CL (resized classes) → phase 3 / FT",
    "joint": "Joint (L_DAE + L_CL each step, resized classes) → phase 3 / FT",
    "dae-ft": "phase 1 / DAE → phase 3 / FT",
    "cl-ft": "phase 2 / CL (resized classes) → phase 3 / FT",
    "ft": "phase 3 / FT only",
    "extra-imb": "phase 1 / DAE → phase 2 / CL (resized classes, max ratio 20) → phase 3 / FT",
    "no-imb": "phase 1 / DAE → phase 2 / CL (no resizing) → phase 3 / FT",
    "logreg": "baseline: a class-balanced logistic regression on the frozen pre-trained body's embeddings",
    "setfit": "baseline: SetFit (Siamese cosine loss on same/different-class pairs, then a logistic regression on "
              "the tuned body's embeddings)",
}


def _format(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _hub_id(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith(("/", ".", "~"))


def _metadata(run: dict[str, Any]) -> str:
    """The card's YAML header, through huggingface_hub's ModelCardData (the Hub's own field names).

    No ``datasets`` entry: a run may read a local copy or a re-split of a Hub dataset, so the card names the data in
    its text only."""
    base = run.get("model_name_or_path", "")
    data = ModelCardData(
        library_name="sentence-transformers",
        pipeline_tag="text-classification",
        tags=["threephase", "sentence-transformers", "text-classification", "tsdae", "contrastive-learning"],
        base_model=base if _hub_id(base) else None,
    )
    return data.to_yaml()


def model_card(config: dict[str, Any], repo_id: str = REPO_ID_PLACEHOLDER) -> str:
    """Markdown with Hub metadata: what the repository holds, usage, phases, hyperparameters, metrics, data, seed."""
    training = config.get("training", {})
    run = training.get("config", {})
    metrics = training.get("metrics", {})
    variant = run.get("variant", "unknown")
    dataset = (run.get("data") or {}).get("dataset") or "custom data"
    base = run.get("model_name_or_path", "unknown")
    labels = list(config.get("label2id", {}))
    example = "play the latest album by daft punk" if "PlayMusic" in labels else "an example sentence"
    linear = (config.get("head") or {}).get("hidden_size", 100) is None  # the baselines' logistic regression
    head = "a single linear layer (a logistic regression)" if linear else "a 2-layer MLP"
    lines = [
        "---",
        _metadata(run),
        "---",
        "",
        f"# ThreePhaseClassifier: {variant} on {dataset}",
        "",
        "A text classifier trained with 3-Phase fine-tuning (López-Ávila & Suárez-Paniagua, EMNLP 2023) using the "
        f"[threephase]({REPOSITORY_URL}) library.",
        "",
        "This repository holds two parts:",
        "",
        "- the **body** (the encoder and its pooling, as the phases left it): a sentence-transformers model at the "
        "root, so `SentenceTransformer` loads it on its own and gives its sentence embeddings;",
        f"- the **head**, {head} on those embeddings (`head.safetensors`), with its settings and labels in "
        "`config_threephase.json`. Only threephase reads the head: the classes come from `ThreePhaseClassifier`.",
        "",
        f"- **Variant**: `{variant}`: {_PHASES.get(variant, variant)}",
        f"- **Base model**: `{base}`",
        f"- **Dataset**: `{dataset}`",
        f"- **Seed**: {run.get('seed', 'unknown')}",
        f"- **Preset**: `{run.get('preset', 'unknown')}`",
        f"- **Labels**: {', '.join(labels)}",
        "",
        "## Usage",
        "",
        f"Classify with threephase (`{INSTALL}`). The classifier is called like a transformers text-classification "
        "pipeline:",
        "",
        "```python",
        "from threephase import ThreePhaseClassifier",
        "",
        f'clf = ThreePhaseClassifier.from_pretrained("{repo_id}")',
        f'print(clf("{example}"))  # [{{\'label\': ..., \'score\': ...}}]',
        f'print(clf(["{example}", "another sentence"], top_k=None))  # every label per text, best first',
        f'print(clf.predict(["{example}"]), clf.label_names)',
        "```",
        "",
        "The body's sentence embeddings, with sentence-transformers alone:",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        f'model = SentenceTransformer("{repo_id}")',
        f'embeddings = model.encode(["{example}", "another sentence"])',
        "print(embeddings.shape)",
        "```",
        "",
        "## Test metrics",
        "",
    ]
    if metrics:
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {_format(v)} |" for k, v in metrics.items()]
    else:
        lines.append("Not evaluated.")
    lines += ["", "## Hyperparameters", ""]
    for phase in ("dae", "imbalance", "cl", "ft"):
        if phase in run:
            settings = ", ".join(f"{k}={v}" for k, v in run[phase].items())
            lines.append(f"- **{phase}**: {settings}")
    lines += ["", f"Head: {config.get('head', {})}", ""]
    return "\n".join(lines)
