import json
import logging

import pandas as pd
import pytest

from threephase import DataConfig, ThreePhaseError, load_data, preset_config
from threephase.data import DATA_DIR_ENV, class_sizes, subsample
from threephase.user_data import prepare_data


def write_folder(path, splits, labels=None):
    path.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        pd.DataFrame(rows, columns=["text", "label"]).to_csv(path / f"{split}.csv", index=False)
    if labels is not None:
        (path / "labels.json").write_text(json.dumps(labels))
    return path


def rows(n_per_class, classes):
    return [(f"example number {i} of class {c}", c) for c in classes for i in range(n_per_class)]


def test_local_copy_keeps_label_names_and_subsamples_per_class(data_dir):
    data = load_data(dataset="snips2", data_dir=data_dir, train_per_class=5, validation_per_class=3, seed=1)
    names = json.loads(open(f"{data_dir}/snips2/labels.json").read())
    assert data["train"].features["label"].names == names
    assert set(class_sizes(data["train"]).values()) == {5}
    assert set(class_sizes(data["validation"]).values()) == {3}
    assert len(data["test"]) == 700


def test_environment_variable_points_at_the_data(data_dir, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, data_dir)
    data = load_data(dataset="sst2", train_per_class=3, validation_per_class=2, test_per_class=2)
    assert data["train"].features["label"].names == ["negative", "positive"]


def test_missing_validation_is_carved_stratified_and_seeded(data_dir):
    first = load_data(dataset="ag_news", data_dir=data_dir, seed=3)
    again = load_data(dataset="ag_news", data_dir=data_dir, seed=3)
    other = load_data(dataset="ag_news", data_dir=data_dir, seed=4)
    assert len(first["validation"]) == 1000 and len(first["train"]) == 4000
    assert first["validation"]["text"] == again["validation"]["text"]
    assert first["validation"]["text"] != other["validation"]["text"]
    train, validation = class_sizes(first["train"]), class_sizes(first["validation"])
    for name in train:
        assert abs(validation[name] / (train[name] + validation[name]) - 0.2) < 0.01


def test_own_folder_with_string_labels_and_other_columns(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    frame = pd.DataFrame({"sentence": [f"text {i}" for i in range(40)], "topic": ["b", "a"] * 20})
    frame.to_csv(folder / "train.csv", index=False)
    data = load_data(data_dir=str(folder), dataset=None, text_column="sentence", label_column="topic")
    assert data["train"].features["label"].names == ["a", "b"]
    assert len(data["test"]) == 8 and len(data["validation"]) == 7  # 20% of 40, then 20% of the 32 left


def test_single_file(tmp_path):
    file = tmp_path / "all.csv"
    pd.DataFrame(rows(10, [0, 1]), columns=["text", "label"]).to_csv(file, index=False)
    data = load_data(data_dir=str(file), dataset=None)
    assert sum(len(data[s]) for s in data) == 20


def test_total_subsample_is_stratified():
    frame = pd.DataFrame({"text": [str(i) for i in range(1000)], "label": [0] * 800 + [1] * 200})
    small = subsample(frame, total=100, seed=0)
    assert len(small) == 100 and small["label"].value_counts()[1] == 20
    assert small.equals(subsample(frame, total=100, seed=0))


def test_empty_and_missing_texts_are_dropped_with_a_count(tmp_path, caplog):
    train = rows(5, [0, 1]) + [("", 0), (None, 1), ("   ", 1)]
    folder = write_folder(tmp_path / "d", {"train": train, "validation": rows(2, [0, 1]), "test": rows(2, [0, 1])})
    with caplog.at_level(logging.WARNING):
        data = load_data(data_dir=str(folder), dataset=None)
    assert len(data["train"]) == 10
    assert "Dropped 3 empty or missing texts from the train split" in caplog.text


def test_examples_without_a_label_are_dropped_with_a_count(tmp_path, caplog):
    train = rows(5, [0, 1]) + [("no label here", None), ("nor here", None)]
    folder = write_folder(tmp_path / "d", {"train": train, "validation": rows(2, [0, 1]), "test": rows(2, [0, 1])})
    with caplog.at_level(logging.WARNING):
        data = load_data(data_dir=str(folder), dataset=None)
    assert len(data["train"]) == 10
    assert "Dropped 2 examples without a label from the train split" in caplog.text


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_dir", "does not exist"),
        ("no_train", "no train.csv"),
        ("bad_column", "no column 'text'"),
        ("label_out_of_range", "do not fit"),
        ("label_not_listed", "not listed"),
        ("single_class", "single class"),
        ("labels_json_broken", "not valid JSON"),
    ],
)
def test_bad_data_is_named(tmp_path, case, message):
    good = {"train": rows(4, [0, 1]), "validation": rows(2, [0, 1]), "test": rows(2, [0, 1])}
    folder = tmp_path / "d"
    if case == "no_train":
        folder.mkdir()
    elif case == "bad_column":
        folder.mkdir()
        pd.DataFrame({"sentence": ["a", "b"], "label": [0, 1]}).to_csv(folder / "train.csv", index=False)
    elif case == "label_out_of_range":
        write_folder(folder, good | {"test": rows(2, [0, 2])}, labels=["x", "y"])
    elif case == "label_not_listed":
        write_folder(folder, {s: [(t, "xyz"[lab]) for t, lab in r] for s, r in good.items()}, labels=["x"])
    elif case == "single_class":
        write_folder(folder, good | {"validation": rows(2, [1])})
    elif case == "labels_json_broken":
        write_folder(folder, good)
        (folder / "labels.json").write_text('["x", "y"')
    path = str(tmp_path / "nowhere") if case == "missing_dir" else str(folder)
    with pytest.raises(ThreePhaseError, match=message):
        load_data(data_dir=path, dataset=None)


def test_unknown_dataset_and_unreachable_hub(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(ThreePhaseError, match="Unknown dataset 'snipz'"):
        load_data(dataset="snipz")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ThreePhaseError, match="offline"):
        load_data(dataset="snips")


def fake_hub(monkeypatch, splits, label_feature):
    """Stand in for ``datasets.load_dataset`` (the Hub is unreachable here) and record how it was called."""
    import datasets

    calls = []

    def load_dataset(hub_id, name=None, revision=None):
        calls.append((hub_id, name, revision))
        features = datasets.Features({"text": datasets.Value("string"), "category": label_feature})
        return datasets.DatasetDict(
            {s: datasets.Dataset.from_pandas(pd.DataFrame(r, columns=["text", "category"]), features=features)
             for s, r in splits.items()}
        )

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_snips2_from_the_hub_halves_its_test_split_into_validation_and_test(monkeypatch):
    import datasets

    classes = ["PlayMusic", "GetWeather", "RateBook"]
    calls = fake_hub(monkeypatch, {"train": rows(10, classes), "test": rows(10, classes)}, datasets.Value("string"))
    data = load_data(dataset="snips2", seed=3)
    assert calls == [("benayas/snips", None, None)]
    assert len(data["train"]) == 30 and len(data["validation"]) == 15 and len(data["test"]) == 15
    assert set(data["validation"]["text"]).isdisjoint(data["test"]["text"])
    assert set(data["validation"]["text"]) | set(data["test"]["text"]) == {t for t, _ in rows(10, classes)}
    assert sorted(class_sizes(data["validation"]).values()) == [5, 5, 5]


def test_script_datasets_load_from_the_hubs_parquet_conversion_with_their_label_names(monkeypatch):
    import datasets

    feature = datasets.ClassLabel(names=[f"intent{i}" for i in range(4)])
    calls = fake_hub(monkeypatch, {"train": rows(10, range(4))}, feature)
    data = load_data(dataset="snips", seed=0)
    assert calls == [("sonos-nlu-benchmark/snips_built_in_intents", None, "refs/convert/parquet")]
    assert data["train"].features["label"].names == feature.names
    assert len(data["train"]) + len(data["validation"]) + len(data["test"]) == 40

    calls = fake_hub(monkeypatch, {s: rows(4, [0, 1]) for s in ("train", "validation", "test")}, datasets.Value("int64"))
    data = load_data(dataset="sst2")
    assert calls == [("SetFit/sst2", None, None)]
    assert data["test"].features["label"].names == ["negative", "positive"]


def test_glue_sst2_tests_on_the_glue_dev_set_and_carves_validation_from_train(monkeypatch):
    """The paper's SST-2: GLUE's training phrases, its dev set as test, its unlabelled test set dropped."""
    import datasets

    feature = datasets.ClassLabel(names=["negative", "positive"])
    hidden = [(f"secret test sentence {i}", -1) for i in range(6)]
    calls = fake_hub(monkeypatch, {"train": rows(20, [0, 1]), "validation": rows(5, [0, 1]), "test": hidden}, feature)
    data = load_data(dataset="glue_sst2", seed=1)
    assert calls == [("nyu-mll/glue", "sst2", None)]
    assert data["test"]["text"] == [t for t, _ in rows(5, [0, 1])]  # the dev set, whole and in order
    assert len(data["validation"]) == 8 and len(data["train"]) == 32  # 20% of train, stratified
    assert set(data["validation"]["text"]) | set(data["train"]["text"]) == {t for t, _ in rows(20, [0, 1])}
    assert data["train"].features["label"].names == ["negative", "positive"]
    assert not any("secret" in t for split in data for t in data[split]["text"])


def test_glue_sst2_takes_the_papers_sst2_rows():
    from threephase.grid.tables import paper_accuracy

    glue, sst2 = preset_config("paper", "glue_sst2"), preset_config("paper", "sst2")
    assert glue.to_dict() | {"data": None} == sst2.to_dict() | {"data": None}
    assert glue.dae.num_train_epochs == 4 and glue.max_seq_length == 512  # all-MiniLM-L12-v2's sst2 row
    assert paper_accuracy(4, "glue_sst2", "FacebookAI/roberta-base", "ft") == 90.28
    assert paper_accuracy(3, "glue_sst2", "sentence-transformers/all-MiniLM-L12-v2", "joint") == 90.04


def user_data(labels, splits=("train", "test"), n=10):
    """A DatasetDict of your own: columns ``sentence`` and ``intent``, ``n`` examples per class and split."""
    import datasets

    return datasets.DatasetDict({
        split: datasets.Dataset.from_dict({
            "sentence": [f"{split} sentence {i} about {label}" for label in labels for i in range(n)],
            "intent": [label for label in labels for _ in range(n)],
            "id": list(range(n * len(labels)))})
        for split in splits})


def test_own_dataset_dict_with_other_columns_and_string_labels():
    config = DataConfig(dataset=None, text_column="sentence", label_column="intent", seed=2, train_per_class=6)
    data = prepare_data(user_data(["weather", "music", "alarm"]), config)
    assert list(data) == ["train", "validation", "test"]
    assert data["train"].column_names == ["text", "label"]
    assert data["train"].features["label"].names == ["alarm", "music", "weather"]  # sorted
    assert set(class_sizes(data["train"]).values()) == {6}  # the subset of the config
    assert set(class_sizes(data["validation"]).values()) == {2}  # 20% of train's 10, stratified
    assert len(data["test"]) == 30 and all(t.startswith("test ") for t in data["test"]["text"])
    again = prepare_data(user_data(["weather", "music", "alarm"]), config)
    assert again["validation"]["text"] == data["validation"]["text"]  # seeded by config.seed
    other = prepare_data(user_data(["weather", "music", "alarm"]), DataConfig(
        text_column="sentence", label_column="intent", seed=3, train_per_class=6))
    assert other["validation"]["text"] != data["validation"]["text"]
    alone = prepare_data(user_data(["weather", "music", "alarm"])["train"], config)  # a Dataset is the train split
    assert len(alone["test"]) == 6 and set(class_sizes(alone["train"]).values()) == {6}  # test: 20% of 30


def test_own_dataset_is_split_like_the_file_loader(tmp_path):
    """A DatasetDict and the same rows as CSV files give the same splits, subsets and order."""
    raw = user_data([3, 1, 7], splits=("train",), n=12)
    folder = tmp_path / "mine"
    folder.mkdir()
    raw["train"].to_pandas().to_csv(folder / "train.csv", index=False)
    settings = dict(dataset=None, text_column="sentence", label_column="intent", seed=4, train_per_class=7,
                    test_per_class=2)
    from_files = load_data(DataConfig(data_dir=str(folder), **settings))
    from_python = prepare_data(raw, DataConfig(**settings))
    assert from_python["train"].features["label"].names == ["1", "3", "7"]  # int labels, sorted, as names
    for split in from_files:
        assert from_python[split]["text"] == from_files[split]["text"], split
        assert from_python[split]["label"] == from_files[split]["label"], split


def test_prepared_data_comes_back_unchanged(tiny_data):
    config = preset_config("cpu", "snips2").data  # larger subsets than tiny_data's
    same = prepare_data(tiny_data, config)
    for split in tiny_data:
        assert same[split]["text"] == tiny_data[split]["text"]
    smaller = prepare_data(tiny_data, DataConfig(train_per_class=3))  # over the configured size: drawn again
    assert set(class_sizes(smaller["train"]).values()) == {3}


def test_a_class_label_keeps_its_names_and_drops_unlabelled_rows():
    import datasets

    feature = datasets.ClassLabel(names=["no", "yes", "maybe"])
    split = lambda labels: datasets.Dataset.from_dict(  # noqa: E731
        {"text": [f"text {i}" for i in range(len(labels))], "label": labels},
        features=datasets.Features({"text": datasets.Value("string"), "label": feature}))
    data = prepare_data(datasets.DatasetDict(train=split([0, 1, 2] * 6 + [-1] * 4), test=split([-1] * 5)))
    assert data["train"].features["label"].names == ["no", "yes", "maybe"]
    assert len(data["train"]) + len(data["validation"]) + len(data["test"]) == 18  # unlabelled rows dropped


@pytest.mark.parametrize("case, message", [
    ("not a DatasetDict", "pass a datasets.DatasetDict"),
    ("no train split", "no 'train' split"),
    ("missing column", "no column 'utterance'"),
    ("single class", "single class"),
    ("list labels", "single class"),
    ("class too small to carve", "add a 'test' split to the DatasetDict"),
])
def test_unusable_dataset_dict_is_named(case, message):
    import datasets

    data, config = user_data(["a", "b"]), DataConfig(text_column="sentence", label_column="intent")
    if case == "not a DatasetDict":
        data = [{"sentence": "hi", "intent": "a"}]
    elif case == "no train split":
        data = datasets.DatasetDict(training=data["train"])
    elif case == "missing column":
        config = DataConfig(text_column="utterance", label_column="intent")
    elif case == "single class":
        data = user_data(["a"])
    elif case == "list labels":
        data = datasets.DatasetDict(train=datasets.Dataset.from_dict({"sentence": ["x", "y"], "intent": [[0], [1]]}))
        message = "not one text and one label"
    elif case == "class too small to carve":
        data = datasets.DatasetDict(train=datasets.Dataset.from_dict({"sentence": ["x", "y", "z"],
                                                                      "intent": ["a", "a", "b"]}))
    with pytest.raises(ThreePhaseError, match=message):
        prepare_data(data, config)
