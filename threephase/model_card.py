"""The model card (README.md) written beside every saved classifier and pushed with it."""

from __future__ import annotations

from typing import Any

_PHASES = {
    "three-phase": "phase 1 / DAE → phase 2 / CL (resized classes) → phase 3 / FT",
    "joint": "Joint (L_DAE + L_CL each step, resized classes) → phase 3 / FT",
    "dae-ft": "phase 1 / DAE → phase 3 / FT",
    "cl-ft": "phase 2 / CL (resized classes) → phase 3 / FT",
    "ft": "phase 3 / FT only",
    "extra-imb": "phase 1 / DAE → phase 2 / CL (resized classes, max ratio 20) → phase 3 / FT",
    "no-imb": "phase 1 / DAE → phase 2 / CL (no resizing) → phase 3 / FT",
}


def _format(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def model_card(config: dict[str, Any]) -> str:
    """Markdown with Hub metadata: phases, hyperparameters, metrics, dataset and seed."""
    training = config.get("training", {})
    run = training.get("config", {})
    metrics = training.get("metrics", {})
    variant = run.get("variant", "unknown")
    dataset = (run.get("data") or {}).get("dataset") or "custom data"
    base = run.get("model_name_or_path", "unknown")
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: text-classification",
        "tags: [threephase, text-classification, tsdae, contrastive-learning]",
        *([f"base_model: {base}"] if "/" in base and not base.startswith(("/", ".")) else []),
        "---",
        "",
        f"# ThreePhaseClassifier: {variant} on {dataset}",
        "",
        "A text classifier trained with 3-Phase fine-tuning (López-Ávila & Suárez-Paniagua, EMNLP 2023) using the "
        "[threephase](https://github.com/threephase/threephase) library.",
        "",
        f"- **Variant**: `{variant}`: {_PHASES.get(variant, variant)}",
        f"- **Base model**: `{base}`",
        f"- **Dataset**: `{dataset}`",
        f"- **Seed**: {run.get('seed', 'unknown')}",
        f"- **Preset**: `{run.get('preset', 'unknown')}`",
        f"- **Labels**: {', '.join(config.get('label2id', {}))}",
        "",
        "## Usage",
        "",
        "```python",
        "from threephase import ThreePhaseClassifier",
        "",
        'clf = ThreePhaseClassifier.from_pretrained("path/or/hub-id")',
        'clf.predict(["an example sentence"])',
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
