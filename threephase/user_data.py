"""Your own data in Python: a :class:`datasets.DatasetDict` (or a ``Dataset`` for train) in threephase's form.

It goes through the steps of :func:`threephase.data.load_data`: labels encoded, empty texts dropped, missing splits
carved from train, subsets drawn. Data that is already in that form passes through unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, Value

from .config import DataConfig
from .data import SPLITS, _check_two_classes, _encode_labels, _finish, _limits, drawn_with
from .data_checks import check_label_values
from .errors import ThreePhaseError

logger = logging.getLogger(__name__)


def prepare_data(data, config: DataConfig | None = None, seed: int | None = None) -> DatasetDict:
    """Your own :class:`datasets.DatasetDict` (or a ``Dataset``, taken as the train split) in threephase's form.

    The columns ``config.text_column`` and ``config.label_column`` become ``text`` and ``label``; plain labels (int
    or str) become a ``ClassLabel`` named by their sorted distinct values (a ``ClassLabel`` keeps its names). Then
    the steps of :func:`load_data` follow: empty texts and examples without a label (``-1`` in a ``ClassLabel``) are
    dropped, a missing validation or test split is carved from train (stratified, seeded with ``config.seed``,
    ``config.validation_fraction``), and the configured subsets are drawn. An ``unlabelled`` split (a text column)
    is kept as texts for phase 1; other splits are ignored.

    Data already in threephase's form and within the configured subset sizes, such as what :func:`load_data`
    returns for the same settings, comes back as it is, so that passing it to :func:`~threephase.run` trains on
    the same rows in the same order. The settings are applied all the same: ``config.imbalance_factor`` reshapes a
    training split that :func:`load_data` did not reshape already (one it reshaped with another factor is
    refused), and ``config.unlabelled`` adds an ``unlabelled`` split when the data has none.

    >>> data = prepare_data(my_dataset_dict, DataConfig(text_column="sentence", label_column="intent"))  # doctest: +SKIP
    """
    config = config or DataConfig()
    seed = config.seed if seed is None else seed
    splits = _as_splits(data)
    reshaped = drawn_with(splits["train"]).get("imbalance_factor")
    if reshaped is not None and reshaped != config.imbalance_factor:
        raise ThreePhaseError(
            f"The training split was already reshaped into a long tail (load_data with data.imbalance_factor="
            f"{reshaped}), but the settings say data.imbalance_factor={config.imbalance_factor}: it cannot be "
            "undone or reshaped twice. Load the data again with the run's settings (load_data(config.data)), or set "
            f"data.imbalance_factor={reshaped}."
        )
    # Prepared data passes through, unless a setting that load_data applies was not applied to it: the long tail
    # (only load_data records it) and the unlabelled texts (an 'unlabelled' split).
    applied = reshaped == config.imbalance_factor and (not config.unlabelled or "unlabelled" in splits)
    if applied and _prepared(splits, config):
        return DatasetDict(splits)
    frames: dict[str, pd.DataFrame] = {}
    names: list[str] | None = None
    for split, dataset in splits.items():
        if split == "unlabelled":
            continue
        missing = [c for c in (config.text_column, config.label_column) if c not in dataset.column_names]
        if missing:
            raise ThreePhaseError(
                f"The {split} split has no column {' or '.join(map(repr, missing))} (its columns: "
                f"{', '.join(dataset.column_names)}). Set data.text_column / data.label_column to your column names "
                "(DataConfig(text_column=..., label_column=...), or --set data.text_column=...), or rename the columns."
            )
        feature = dataset.features[config.label_column]
        if not isinstance(feature, (ClassLabel, Value)) or not isinstance(dataset.features[config.text_column], Value):
            column = config.label_column if not isinstance(feature, (ClassLabel, Value)) else config.text_column
            raise ThreePhaseError(
                f"Column {column!r} of the {split} split holds {type(dataset.features[column]).__name__} values, not "
                "one text and one label per example: threephase classifies a text into a single class. Flatten it "
                "(e.g. join tokens into a string, keep one label), or choose another column."
            )
        frame = dataset.select_columns([config.text_column, config.label_column]).to_pandas()
        frame = frame.set_axis(["text", "label"], axis=1)
        if isinstance(feature, ClassLabel):
            if names is not None and list(feature.names) != names:
                raise ThreePhaseError(
                    f"The {split} split's ClassLabel names {feature.names} differ from the train split's {names}: "
                    "cast every split to the same ClassLabel (dataset.cast_column(...))."
                )
            names = list(feature.names)
            frame = frame.assign(label=frame["label"].where(frame["label"] >= 0))  # -1: no label
        if split != "train" and frame["label"].isna().all():
            logger.warning("The %s split has no labels: carving it from train instead.", split)
            continue
        frames[split] = frame
    check_label_values(pd.concat([f["label"].dropna() for f in frames.values()]).unique(), "your data")
    frames, names = _encode_labels(frames, names, "the ClassLabel of the label column")
    add_split = lambda split: f"add a {split!r} split to the DatasetDict"  # noqa: E731
    prepared = _finish(frames, names, config, seed, add_split)
    if "unlabelled" in splits:  # your own texts without labels, for phase 1
        own = splits["unlabelled"]
        if config.text_column not in own.column_names:
            raise ThreePhaseError(f"The unlabelled split has no column {config.text_column!r}: rename its text column.")
        prepared["unlabelled"] = Dataset.from_dict({"text": [str(t) for t in own[config.text_column] if t]})
    return prepared


def _as_splits(data) -> dict[str, Dataset]:
    """The train, validation and test splits of ``data``, checked."""
    if isinstance(data, Dataset):
        data = {"train": data}
    if not isinstance(data, Mapping) or not all(isinstance(d, Dataset) for d in data.values()):
        raise ThreePhaseError(
            f"Cannot use data of type {type(data).__name__}: pass a datasets.DatasetDict with a 'train' split (and "
            "optionally 'validation' and 'test'), or a Dataset for the train split. A streamed (Iterable) dataset "
            "must be loaded without streaming=True; a pandas DataFrame becomes one with Dataset.from_pandas(df)."
        )
    if "train" not in data:
        raise ThreePhaseError(
            f"The data has no 'train' split (its splits: {', '.join(map(str, data)) or 'none'}): name the training "
            "split 'train', e.g. DatasetDict(train=..., test=...)."
        )
    ignored = [str(split) for split in data if split not in (*SPLITS, "unlabelled")]
    if ignored:
        logger.warning("Ignoring the split(s) %s: threephase uses train, validation and test (rename a split to use "
                       "it).", ", ".join(ignored))
    return {split: data[split] for split in (*SPLITS, "unlabelled") if split in data}


def _prepared(splits: dict[str, Dataset], config: DataConfig) -> bool:
    """True when ``splits`` are what :func:`load_data` makes with ``config``: the three splits, columns text and
    label (one ClassLabel), every split within its subset sizes."""
    splits = {split: d for split, d in splits.items() if split in SPLITS}  # texts without labels need no check
    if set(splits) != set(SPLITS) or any(d.column_names != ["text", "label"] for d in splits.values()):
        return False
    features = [d.features["label"] for d in splits.values()]
    if not isinstance(features[0], ClassLabel) or any(f != features[0] for f in features):
        return False
    for split, (per_class, total) in _limits(config).items():
        labels = pd.Series(splits[split]["label"])
        # A total cap may be exceeded by the per-class floor that tops small classes up (see sampling.subsample).
        ceiling = None if total is None else total + config.min_per_class * labels.nunique()
        if (per_class is not None and labels.value_counts().max() > per_class) or (total is not None and len(labels) > ceiling):
            return False
        if (labels < 0).any():
            return False
        _check_two_classes(split, labels, features[0].names)
    return True
