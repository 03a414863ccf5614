import json

import pytest

from threephase import RunConfig, ThreePhaseError, apply_overrides, preset_config
from threephase.config import parse_set_options, setting_names
from threephase.presets import paper_hyperparameters


def test_json_round_trip_keeps_every_setting():
    config = preset_config("paper", "sst5", "FacebookAI/roberta-base", variant="joint", seed=7)
    restored = RunConfig.from_dict(json.loads(config.to_json()))
    assert restored == config
    assert restored.dae.deletion_ratio == 0.5  # Table 5, RoBERTa / SST-5


def test_json_file_round_trip(tmp_path):
    config = preset_config("cpu", "snips2", seed=3)
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert RunConfig.from_json_file(path) == config


def test_paper_preset_takes_table5_rows():
    roberta = paper_hyperparameters("ag_news", "roberta-base")
    assert roberta["dae"]["learning_rate"] == 2e-4 and roberta["ft"]["freeze_body"] is True
    minilm = paper_hyperparameters("snips", "sentence-transformers/all-MiniLM-L12-v2")
    assert minilm["max_seq_length"] is None  # 1.2 x the longest text, computed at run time
    unknown = paper_hyperparameters(None, "my/model")
    assert unknown == paper_hyperparameters("snips2", "sentence-transformers/all-MiniLM-L12-v2")


def test_cpu_preset_uses_small_model_and_subset():
    config = preset_config("cpu", "snips2")
    assert config.model_name_or_path.endswith("all-MiniLM-L6-v2")
    assert config.max_seq_length == 64 and config.data.train_per_class is None  # no per-class evening-out
    assert config.data.max_train_samples == 448 and config.data.min_per_class == 8  # the data's own proportions


def test_overrides_nested_and_dotted_and_typed():
    config = apply_overrides(RunConfig(), {"ft": {"dropout": 0.1}, "ft.freeze_body": "true", "seed": "5",
                                           "ft.activation": "null"})
    assert config.ft.dropout == 0.1 and config.ft.freeze_body is True and config.seed == 5
    assert config.ft.activation is None
    assert RunConfig().ft.dropout == 0.3  # the original is untouched


def test_unknown_setting_is_named():
    with pytest.raises(ThreePhaseError, match="ft.learning_rat"):
        apply_overrides(RunConfig(), {"ft.learning_rat": 1})
    with pytest.raises(ThreePhaseError, match="KEY=VALUE"):
        parse_set_options(["ft.learning_rate"])
    assert "cl.pair_multiplier" in setting_names()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"variant": "four-phase"}, "Unknown variant"),
        ({"imbalance.min_ratio": 5.0}, "min_ratio"),
        ({"imbalance.max_ratio": 0}, "positive"),
        ({"dae.deletion_ratio": 1.0}, r"\[0, 1\)"),
        ({"ft.activation": "swish"}, "activation"),
        ({"cl.warmup_ratio": 1.5}, "cl.warmup_ratio"),
        ({"dae.per_device_train_batch_size": 0}, "at least 1"),
    ],
)
def test_validate_rejects_bad_settings(overrides, message):
    with pytest.raises(ThreePhaseError, match=message):
        apply_overrides(RunConfig(), overrides).validate()


def test_unknown_preset():
    with pytest.raises(ThreePhaseError, match="Unknown preset"):
        preset_config("gpu")
