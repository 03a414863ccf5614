"""Data passed to run() already prepared still gets the settings that load_data would apply, or a clear refusal."""

from collections import Counter

import pytest

from threephase import DataConfig, ThreePhaseError, load_data, prepare_data
from threephase.data import data_fingerprint

from conftest import tiny_config


def test_prepared_data_gets_the_long_tail(tiny_data):
    shaped = prepare_data(tiny_data, DataConfig(imbalance_factor=4))
    sizes = Counter(shaped["train"]["label"])
    assert max(sizes.values()) == 8 and min(sizes.values()) == 2  # 8 per class before, largest / smallest = 4
    assert shaped["test"]["text"] == tiny_data["test"]["text"]


def test_data_that_load_data_reshaped_is_not_reshaped_again(data_dir):
    settings = DataConfig(dataset="snips2", data_dir=data_dir, imbalance_factor=4, max_train_samples=60,
                          min_per_class=2, validation_per_class=4, test_per_class=6)
    data = load_data(settings)
    assert data_fingerprint(prepare_data(data, settings)) == data_fingerprint(data)
    with pytest.raises(ThreePhaseError, match=r"already reshaped into a long tail .*imbalance_factor=4"):
        prepare_data(data, DataConfig(max_train_samples=60, min_per_class=2))


def test_prepared_data_gets_the_unlabelled_texts(tiny_data, tmp_path):
    (tmp_path / "texts.txt").write_text("play some jazz\nwill it snow tomorrow\n")
    prepared = prepare_data(tiny_data, DataConfig(unlabelled=str(tmp_path / "texts.txt")))
    assert prepared["unlabelled"]["text"] == ["play some jazz", "will it snow tomorrow"]
    assert prepared["train"]["text"] == tiny_data["train"]["text"]
    # the subset is drawn already: no training text is left out of it, and the error says what to do instead
    with pytest.raises(ThreePhaseError, match="leaves none out.*'unlabelled' split"):
        prepare_data(tiny_data, DataConfig(unlabelled="train"))


def test_long_tail_with_train_per_class_is_refused(tmp_path, data_dir):
    config = tiny_config("ft", output_dir=str(tmp_path / "run"))
    config.data.imbalance_factor, config.data.train_per_class = 10, 8
    with pytest.raises(ThreePhaseError, match="cancel each other.*max_train_samples"):
        config.validate()
    with pytest.raises(ThreePhaseError, match="cancel each other"):
        load_data(dataset="snips2", data_dir=data_dir, imbalance_factor=10, train_per_class=8)
    assert not (tmp_path / "run").exists()
