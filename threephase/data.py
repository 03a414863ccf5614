"""Datasets: the paper's by name (Hub or local copy), your own CSV folder or file, or your own ``DatasetDict``.

Every loader returns a :class:`datasets.DatasetDict` with splits ``train``, ``validation`` and ``test`` and
columns ``text`` (str) and ``label`` (a :class:`datasets.ClassLabel`, so label names travel with the data).
Files (:func:`load_data`) and Python data (:func:`threephase.user_data.prepare_data`) go through the same steps: labels encoded, empty
texts dropped, missing splits carved from train, subsets drawn.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, Value
from sklearn.model_selection import train_test_split

from .config import DataConfig, check_data_settings
from .errors import ThreePhaseError
from .data_checks import bad_encoding_line, check_label_values, warn_about_splits
from .sampling import long_tail, subsample  # noqa: F401  (subsample is part of this module's API)

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "THREEPHASE_DATA_DIR"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class HubDataset:
    hub_id: str
    label_names: tuple[str, ...] | None = None  # when the Hub copy stores bare integers
    # datasets >= 4 refuses loading scripts; the Hub's own parquet conversion of such a repo still loads.
    revision: str | None = None
    # snips2's Hub copy has train and a 1,400-row test only: halving test gives the benchmark's 700 / 700.
    validation_from_test: bool = False
    config_name: str | None = None  # the Hub dataset's configuration (GLUE holds one per task)
    # GLUE keeps its test labels secret (all -1): its validation split is the test, and validation is carved from train.
    test_from_validation: bool = False


DATASETS = {
    "snips": HubDataset("sonos-nlu-benchmark/snips_built_in_intents", revision="refs/convert/parquet"),
    "snips2": HubDataset("benayas/snips", validation_from_test=True),
    # SST-2 at sentence level (6,920 / 872 / 1,821 sentences), the offline copy's source.
    "sst2": HubDataset("SetFit/sst2", ("negative", "positive")),
    # The paper's SST-2: GLUE's 67,349 training phrases, tested on GLUE's 872-sentence dev set.
    "glue_sst2": HubDataset("nyu-mll/glue", config_name="sst2", test_from_validation=True),
    "sst5": HubDataset("SetFit/sst5", ("very negative", "negative", "neutral", "positive", "very positive")),
    "ag_news": HubDataset("fancyzhx/ag_news"),
    "imdb": HubDataset("stanfordnlp/imdb"),
}

_TEXT_GUESSES = ("text", "sentence", "utterance", "query", "review")
_LABEL_GUESSES = ("label", "labels", "intent", "category", "class")


def load_data(config: DataConfig | None = None, seed: int | None = None, **settings) -> DatasetDict:
    """Load, clean, split and subsample the data that ``config`` (or keyword settings) describe.

    ``seed`` (default: ``config.seed``, the data seed) drives the split and subset draws.

    Without a data dir (argument or ``$THREEPHASE_DATA_DIR``) a paper dataset comes from the Hub; its label
    names and splits match the offline copies in ``../shared/data``.

    >>> data = load_data(dataset="snips2", data_dir="../shared/data", train_per_class=8)  # doctest: +SKIP
    >>> data["train"].features["label"].names[:2]  # doctest: +SKIP
    ['AddToPlaylist', 'BookRestaurant']
    """
    config = config or DataConfig(**settings)
    seed = config.seed if seed is None else seed
    frames, names = _load_frames(config, seed)
    return _finish(frames, names, config, seed, lambda split: f"provide {split}.csv",
                   benchmark=config.dataset in DATASETS)


def _limits(config: DataConfig) -> dict[str, tuple[int | None, int | None]]:
    return {
        "train": (config.train_per_class, config.max_train_samples),
        "validation": (config.validation_per_class, config.max_validation_samples),
        "test": (config.test_per_class, config.max_test_samples),
    }


def _finish(frames: dict[str, pd.DataFrame], names: list[str], config: DataConfig, seed: int, add_split,
            benchmark: bool = False) -> DatasetDict:
    """What every source shares once its labels are ids: drop empty texts, carve missing splits, draw the subsets.

    ``add_split(split)`` says how the user could supply a split themselves (for the error of a class too small to
    carve from). ``benchmark``: the splits are a paper dataset's, kept as they are even where they overlap."""
    check_data_settings(config)
    frames = {split: _clean(frame, split) for split, frame in frames.items()}
    frames = _fill_missing_splits(frames, config.validation_fraction, seed, add_split)
    pool = frames["train"]["text"]  # every training text, before the long tail and the labelled subset
    limits = _limits(config)
    if config.imbalance_factor is not None:
        # max_train_samples sizes the long tail itself: a proportional draw after it would top the small classes
        # up to min_per_class and change the ratio that the setting states.
        frames["train"] = long_tail(frames["train"], config.imbalance_factor, seed, total=limits["train"][1])
        limits["train"] = (limits["train"][0], None)
    before = {split: _sizes(frame, names) for split, frame in frames.items()}
    for split, (per_class, total) in limits.items():
        frames[split] = subsample(frames[split], per_class=per_class, total=total, seed=seed,
                                  min_per_class=config.min_per_class)
        _check_two_classes(split, frames[split]["label"], names)
    warn_about_splits(frames, names, benchmark)
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(names))})
    # The class sizes before the subset draw travel in each split's info, for the run record, and so does the long
    # tail: data passed on to run() must not be reshaped a second time (user_data.prepare_data reads it).
    data = DatasetDict({
        split: Dataset.from_pandas(frames[split], preserve_index=False, info=DatasetInfo(
            features=features, description=json.dumps({
                "class_sizes_before_subset": before[split],
                **({"imbalance_factor": config.imbalance_factor} if split == "train" else {})})))
        for split in SPLITS
    })
    if config.unlabelled:
        data["unlabelled"] = Dataset.from_dict({"text": unlabelled_texts(config, pool, set(frames["train"]["text"]), seed)})
    return data


def unlabelled_texts(config: DataConfig, pool, labelled: set[str], seed: int = 0) -> list[str]:
    """The texts without labels that ``config.unlabelled`` names (see :class:`~threephase.config.DataConfig`), a
    ``seed``-ed sample of ``config.max_unlabelled_samples`` of them when that is set."""
    if config.unlabelled == "train":
        texts = [t for t in pool if t not in labelled]
    else:
        path = Path(config.unlabelled).expanduser()
        if not path.is_file():
            raise ThreePhaseError(
                f"data.unlabelled {config.unlabelled!r} is neither 'train' nor a file: give a .txt file (one text per "
                "line), a .csv or .jsonl file with a text column, or 'train' (the training texts outside the subset)."
            )
        if path.suffix == ".txt":
            texts = path.read_text(encoding="utf-8").splitlines()
        elif path.suffix in (".csv", ".jsonl"):
            table = pd.read_csv(path) if path.suffix == ".csv" else pd.read_json(path, lines=True)
            if config.text_column not in table.columns:
                raise ThreePhaseError(
                    f"{str(path)!r} has no column {config.text_column!r} (its columns: {', '.join(map(str, table.columns))})"
                    ": rename it, or set data.text_column."
                )
            texts = table[config.text_column].dropna().astype(str).tolist()
        else:
            raise ThreePhaseError(f"Cannot read unlabelled texts from {str(path)!r}: use a .txt, .csv or .jsonl file.")
    texts = [t for t in (str(t).strip() for t in texts) if t]
    if not texts and config.unlabelled == "train":
        raise ThreePhaseError(
            "data.unlabelled='train' takes the training texts left out of the labelled subset, and the training "
            "split leaves none out. Draw a labelled subset (data.max_train_samples or data.train_per_class), give a "
            "file of texts instead, or, for data drawn already, pass a DatasetDict with an 'unlabelled' split."
        )
    if not texts:
        raise ThreePhaseError(f"data.unlabelled {config.unlabelled!r} holds no text: point it at a file of texts.")
    if config.max_unlabelled_samples is not None and config.max_unlabelled_samples < len(texts):
        texts = pd.Series(texts).sample(n=config.max_unlabelled_samples, random_state=seed).tolist()
    return texts


def _sizes(frame: pd.DataFrame, names: list[str]) -> dict[str, int]:
    counts = frame["label"].value_counts()
    return {name: int(counts.get(i, 0)) for i, name in enumerate(names)}


def sizes_before_subset(dataset: Dataset) -> dict[str, int] | None:
    """The class sizes of ``dataset``'s split before its subset was drawn (None when it was not loaded here)."""
    return drawn_with(dataset).get("class_sizes_before_subset")


def drawn_with(dataset: Dataset) -> dict:
    """What :func:`load_data` recorded in a split it made (class sizes before the subset, the long tail's factor);
    ``{}`` for data it did not make."""
    try:
        recorded = json.loads(dataset.info.description or "{}")
    except (json.JSONDecodeError, AttributeError):
        return {}
    return recorded if isinstance(recorded, dict) else {}





def _check_two_classes(split: str, labels, names: list[str]) -> None:
    labels = pd.Series(labels)
    if labels.nunique() < 2:
        raise ThreePhaseError(
            f"The {split} split holds a single class ({names[labels.iloc[0]]!r}): a classifier "
            "needs at least two. Check the label column, or draw a larger subset."
        )


def data_source(config: DataConfig) -> Path | None:
    """Where the data of ``config`` comes from: a local file or folder, or None for the Hub.

    Raises a :class:`ThreePhaseError` naming the fix when no such source can exist, without reading any data, so
    that a long job (``reproduce``) can check its datasets before it starts."""
    data_dir = config.data_dir or os.environ.get(DATA_DIR_ENV) or None
    if data_dir is None:
        if config.dataset is None:
            raise ThreePhaseError("No data given: name a dataset (--dataset) or a folder or file (--data-dir).")
        if config.dataset not in DATASETS:
            raise ThreePhaseError(
                f"Unknown dataset {config.dataset!r}. Choose one of: {', '.join(DATASETS)}; or pass --data-dir with "
                "your own CSV."
            )
        return None
    root = Path(data_dir).expanduser()
    source = "--data-dir" if config.data_dir else f"${DATA_DIR_ENV}"
    if not root.exists():
        raise ThreePhaseError(f"Data path {str(root)!r} (from {source}) does not exist: give an existing folder or file.")
    if config.dataset and (root / config.dataset).is_dir():
        root = root / config.dataset
    elif config.dataset and root.is_dir() and not (root / "train.csv").exists():
        if config.dataset not in DATASETS:
            raise ThreePhaseError(
                f"Unknown dataset {config.dataset!r}: {source} is {str(root)!r}, which has no {config.dataset!r} "
                f"folder, and the Hub datasets are {', '.join(DATASETS)}. Fix the name, or add "
                f"{config.dataset}/train.csv to {str(root)!r}."
            )
        raise ThreePhaseError(
            f"{source} is {str(root)!r}, but it has no {config.dataset!r} folder (and no train.csv): add "
            f"{config.dataset}/train.csv there, or drop {source} to load {config.dataset!r} from the Hub."
        )
    if root.is_dir() and not (root / "train.csv").is_file():
        raise ThreePhaseError(
            f"{str(root)!r} has no train.csv: a data folder needs train.csv (and optionally validation.csv, "
            "test.csv, labels.json), each with a text column and a label column."
        )
    return root


def _load_frames(config: DataConfig, seed: int) -> tuple[dict[str, pd.DataFrame], list[str]]:
    root = data_source(config)
    if root is None:
        return _from_hub(config.dataset, seed)
    if root.is_file():
        frames = {"train": _read_table(root, config)}
        label_file = root.parent / "labels.json"
    else:
        frames = {s: _read_table(root / f"{s}.csv", config) for s in SPLITS if (root / f"{s}.csv").is_file()}
        label_file = root / "labels.json"
    names = None
    if label_file.is_file():
        try:
            names = json.loads(label_file.read_text())
        except json.JSONDecodeError as err:
            raise ThreePhaseError(
                f"{str(label_file)!r} is not valid JSON ({err}): it must hold a list of label names, "
                'e.g. ["negative", "positive"]. Fix it, or delete it to name the labels after their values.'
            ) from None
    check_label_values(pd.concat([f["label"].dropna() for f in frames.values()]).unique(), str(root))
    return _encode_labels(frames, names, str(label_file))


def _read_table(path: Path, config: DataConfig) -> pd.DataFrame:
    readers = {".csv": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t"), ".parquet": pd.read_parquet,
               ".jsonl": lambda p: pd.read_json(p, lines=True), ".json": pd.read_json}
    if path.suffix not in readers:
        raise ThreePhaseError(f"Cannot read {str(path)!r}: use a .csv, .tsv, .jsonl, .json or .parquet file.")
    try:
        frame = readers[path.suffix](path)
    except UnicodeDecodeError as err:
        raise ThreePhaseError(
            f"{str(path)!r} is not UTF-8 text: line {bad_encoding_line(path)} holds the byte {err.object[err.start:err.start + 1]!r} "
            f"({err.reason}). Re-save the file as UTF-8 (e.g. from a spreadsheet: CSV UTF-8; or "
            f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}-utf8{path.suffix}`)."
        ) from None
    except (pd.errors.ParserError, ValueError) as err:
        fix = ("Fix that row (an unterminated quote, or a row with more fields than the header; a text that holds the "
               "separator must be quoted), then run again." if path.suffix in (".csv", ".tsv") else
               f"Fix the file: it must be a table with a text and a label column ({path.suffix} as pandas reads it).")
        row = re.search(r"starting at row (\d+)", str(err))  # pandas counts from 0, the header included
        where = f" (line {int(row.group(1)) + 1} of the file)" if row else ""
        raise ThreePhaseError(f"Cannot read {str(path)!r}: {str(err).strip()}{where}. {fix}") from None
    missing = [c for c in (config.text_column, config.label_column) if c not in frame.columns]
    if missing:
        raise ThreePhaseError(
            f"{str(path)!r} has no column {' or '.join(map(repr, missing))} (its columns: {', '.join(map(str, frame.columns))}). "
            "Rename the columns, or pass --set data.text_column=... / data.label_column=..."
        )
    return frame[[config.text_column, config.label_column]].set_axis(["text", "label"], axis=1)


def _encode_labels(
    frames: dict[str, pd.DataFrame], names: list[str] | None, where: str
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Map labels to ids 0..K-1, checking them against ``labels.json`` when there is one."""
    for split, frame in frames.items():
        unlabelled = int(frame["label"].isna().sum())
        if unlabelled:
            logger.warning("Dropped %d examples without a label from the %s split.", unlabelled, split)
    frames = {s: f.dropna(subset=["label"]) for s, f in frames.items()}
    all_labels = pd.concat([f["label"] for f in frames.values()])
    values = all_labels.unique()
    numeric = pd.api.types.is_numeric_dtype(all_labels) and all(float(v).is_integer() for v in values)
    if names is not None:
        if not isinstance(names, list) or len(set(map(str, names))) != len(names):
            raise ThreePhaseError(f"{where} must hold a JSON list of distinct label names (index = label id).")
        if numeric:
            bad = sorted(int(v) for v in values if not 0 <= v < len(names))
            if bad:
                raise ThreePhaseError(
                    f"Labels {bad[:5]} do not fit {where}, which names {len(names)} labels (ids 0..{len(names) - 1}): "
                    "fix the label column or labels.json."
                )
            return {s: f.assign(label=f["label"].astype(int)) for s, f in frames.items()}, [str(n) for n in names]
        index = {str(n): i for i, n in enumerate(names)}
        bad = sorted({str(v) for v in values} - set(index))
        if bad:
            raise ThreePhaseError(f"Labels {bad[:5]} are not listed in {where}: add them there, or fix the data.")
        return {s: f.assign(label=f["label"].astype(str).map(index)) for s, f in frames.items()}, list(index)
    if numeric:
        names = [str(int(v)) for v in sorted(values)]
        index = {int(v): i for i, v in enumerate(sorted(values))}
        return {s: f.assign(label=f["label"].astype(int).map(index)) for s, f in frames.items()}, names
    names = sorted(str(v) for v in values)
    index = {n: i for i, n in enumerate(names)}
    return {s: f.assign(label=f["label"].astype(str).map(index)) for s, f in frames.items()}, names


def _from_hub(name: str, seed: int) -> tuple[dict[str, pd.DataFrame], list[str]]:
    import datasets

    spec = DATASETS[name]
    try:
        hub = datasets.load_dataset(spec.hub_id, spec.config_name, revision=spec.revision)
    except Exception as err:  # the Hub client raises many types for "no network"
        raise ThreePhaseError(
            f"Could not load {name!r} ({spec.hub_id}) from the Hugging Face Hub: {type(err).__name__}: {err}. "
            f"To work offline, point ${DATA_DIR_ENV} (or --data-dir) at a folder holding {name}/train.csv, "
            "validation.csv, test.csv and labels.json."
        ) from None
    first = hub[next(iter(hub))]
    text = next((c for c in _TEXT_GUESSES if c in first.column_names), None)
    label = next((c for c in _LABEL_GUESSES if c in first.column_names), None)
    if text is None or label is None:
        raise ThreePhaseError(f"{spec.hub_id} has columns {first.column_names}; threephase cannot tell text from label.")
    feature = first.features[label]
    names = list(feature.names) if isinstance(feature, ClassLabel) else spec.label_names
    frames = {
        split: hub[split].to_pandas()[[text, label]].set_axis(["text", "label"], axis=1)
        for split in SPLITS
        if split in hub
    }
    if spec.test_from_validation and "validation" in frames:
        frames["test"] = frames.pop("validation")  # the Hub's test (no labels) is dropped; validation is carved
    frames, names = _encode_labels(frames, list(names) if names else None, spec.hub_id)
    if spec.validation_from_test and "validation" not in frames and "test" in frames:
        frames["test"], frames["validation"] = _stratified_split(frames["test"], 0.5, seed, "validation")
    return frames, names


def _clean(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """Drop empty and missing texts, saying how many."""
    keep = frame["text"].notna() & frame["text"].astype(str).str.strip().astype(bool)
    dropped = int((~keep).sum())
    if dropped:
        logger.warning("Dropped %d empty or missing texts from the %s split.", dropped, split)
    frame = frame[keep].assign(text=lambda f: f["text"].astype(str))
    if frame.empty:
        raise ThreePhaseError(f"The {split} split has no non-empty text: check the text column.")
    return frame.reset_index(drop=True)


def _fill_missing_splits(frames: dict[str, pd.DataFrame], fraction: float, seed: int,
                         add_split=lambda split: f"provide {split}.csv") -> dict[str, pd.DataFrame]:
    """Carve a missing validation (and, if needed, test) split from train: stratified, seeded (paper §2.4)."""
    frames = dict(frames)
    for split in ("test", "validation"):
        if split not in frames:
            logger.warning("No %s split: carving %.0f%% of train for it (stratified, seed %d).", split, fraction * 100, seed)
            frames["train"], frames[split] = _stratified_split(frames["train"], fraction, seed, split, add_split)
    return frames


def _stratified_split(frame: pd.DataFrame, fraction: float, seed: int, split: str,
                      add_split=lambda split: f"provide {split}.csv"):
    counts = frame["label"].value_counts()
    if (counts < 2).any():
        raise ThreePhaseError(
            f"Cannot carve a stratified {split} split: class id {counts.idxmin()} has a single example. "
            f"Add examples, or {add_split(split)}."
        )
    left, right = train_test_split(frame, test_size=fraction, stratify=frame["label"], random_state=seed)
    return left.reset_index(drop=True), right.reset_index(drop=True)


def data_fingerprint(data: DatasetDict) -> dict[str, str]:
    """A short hash of each split's texts and labels: equal fingerprints mean the same data draw."""
    fingerprints = {}
    for split, dataset in data.items():
        digest = hashlib.sha256()
        labels = dataset["label"] if "label" in dataset.column_names else [""] * len(dataset)
        for text, label in zip(dataset["text"], labels):
            digest.update(f"{label}\t{text}\n".encode())
        fingerprints[split] = digest.hexdigest()[:16]
    return fingerprints


def class_sizes(dataset: Dataset) -> dict[str, int]:
    """Examples per class, by label name, in label-id order."""
    return _sizes(pd.DataFrame({"label": dataset["label"]}), dataset.features["label"].names)
