"""The "When do the phases help?" experiment: its grid, its claim that the resize variants tie on balanced classes,
and its smallest form end to end (what CI runs; the book's files come from the full command)."""

import json

import pandas as pd
import pytest

from threephase import ThreePhaseError
from threephase.cli import main
from threephase.config import CLConfig, ImbalanceConfig
from threephase.grid.experiment import plan
from threephase.grid.report import summarize, to_markdown
from threephase.grid.settings import SETTINGS
from threephase.phases import pair_dataset


def test_plan_runs_each_setting_s_variants_with_ft_and_its_overrides(data_dir, monkeypatch):
    monkeypatch.setenv("THREEPHASE_DATA_DIR", str(data_dir))
    grid = plan(seeds=5)
    variants = {name: {c["variant"] for c in cells} for name, cells in grid.cells.items()}
    assert variants["long-tail"] >= {"three-phase", "no-imb", "extra-imb", "ft", "logreg", "joint", "dae-ft", "cl-ft"}
    assert not variants["few-shot"] & {"no-imb", "extra-imb"}
    assert variants["unlabelled"] == {"three-phase", "joint", "dae-ft", "ft", "logreg"}
    assert "setfit" in variants["few-shot"]  # the dev extra installs it
    assert len(grid.cells["few-shot"]) == 2 * 7 * 5  # datasets × variants × seeds
    assert {c["dataset"] for c in grid.cells["long-tail"]} == {"snips2"}
    assert grid.overrides["long-tail"]["data.imbalance_factor"] == 10
    assert "data.train_per_class" not in grid.overrides["long-tail"]
    assert grid.overrides["unlabelled"]["data.unlabelled"] == "train"
    # A setting's own choice beats the size's budget (one pass over many texts, four over a few).
    assert grid.overrides["unlabelled"]["dae.num_train_epochs"] == 1
    assert grid.overrides["few-shot"]["dae.num_train_epochs"] == 4
    # Few-shot selection reads no more labels than training does, for every method.
    assert grid.overrides["few-shot"]["data.validation_per_class"] == grid.overrides["few-shot"]["data.train_per_class"]
    # Phase 3 is the cpu preset's for every variant: no setting or size changes it.
    assert not any(k.startswith("ft.") for o in grid.overrides.values() for k in o)
    # The resize comparisons at equal steps: every variant of the setting draws the named variant's pair count.
    many = grid.dataset_overrides["long-tail-many-pairs"]["snips2"]["cl.num_pairs"]
    few = grid.dataset_overrides["long-tail-few-pairs"]["snips2"]["cl.num_pairs"]
    assert many > few > 0
    assert {c["variant"] for c in grid.cells["long-tail-many-pairs"]} == {"three-phase", "extra-imb", "no-imb", "ft"}
    assert all(o["cl.num_pairs"] == many for o, _ in grid.groups("long-tail-many-pairs"))
    # The smallest form shrinks each setting's own draw and never adds another kind of draw to it.
    small = plan(size="smallest", seeds=1, variants=["three-phase"])
    assert small.overrides["few-shot"]["data.train_per_class"] == 3
    assert "data.max_train_samples" not in small.overrides["few-shot"]
    assert "data.train_per_class" not in small.overrides["long-tail"]
    assert small.overrides["long-tail"]["ft.num_train_epochs"] == 1  # it caps the setting's own budget too
    assert {c["variant"] for c in small.cells["few-shot"]} == {"three-phase", "ft"}
    # --set comes last: it overrides the setting's own draw.
    assert plan(settings=["few-shot"], seeds=1, extra={"data.train_per_class": 32}).overrides["few-shot"][
        "data.train_per_class"] == 32


def test_long_tail_runs_every_variant_but_setfit_in_the_tables_order():
    """settings.py stands below the tables, so it lists the long-tail variants itself: a new variant must join it."""
    from threephase.config import VARIANTS
    from threephase.grid.tables import VARIANT_TITLES

    variants = SETTINGS["long-tail"].variants
    assert set(variants) == set(VARIANTS) - {"setfit"}
    assert list(variants) == [v for v in VARIANT_TITLES if v in variants]


def test_plan_names_an_unknown_setting_or_size():
    with pytest.raises(ThreePhaseError, match="Unknown setting 'tail'"):
        plan(settings=["tail"])
    with pytest.raises(ThreePhaseError, match="Unknown size 'huge'"):
        plan(size="huge")


def test_pair_count_is_what_phase_2_draws(data_dir, monkeypatch):
    from threephase.data import load_data
    from threephase.grid.experiment import pair_count
    from threephase.grid.settings import LONG_TAIL

    monkeypatch.setenv("THREEPHASE_DATA_DIR", str(data_dir))
    overrides = {**LONG_TAIL, "data.max_validation_samples": 48, "data.max_test_samples": 300}
    data = load_data(dataset="snips2", imbalance_factor=10, max_train_samples=80, min_per_class=4,
                     max_validation_samples=48, max_test_samples=300)
    texts, labels = data["train"]["text"], data["train"]["label"]
    cl = CLConfig(pair_multiplier=LONG_TAIL["cl.pair_multiplier"])
    for variant, imbalance in (("extra-imb", ImbalanceConfig(max_ratio=20.0)), ("no-imb", None),
                               ("three-phase", ImbalanceConfig())):
        _, info = pair_dataset(texts, labels, imbalance, cl, seed=0)
        assert pair_count("snips2", "sentence-transformers/all-MiniLM-L6-v2", variant, overrides) == info["num_pairs"]
    # cl.num_pairs then gives another resize that count.
    _, info = pair_dataset(texts, labels, None, CLConfig(num_pairs=500), seed=0)
    assert info["num_pairs"] == 500


def test_on_balanced_classes_the_resize_variants_train_the_same_pairs():
    """Why few-shot and unlabelled leave out extra-imb and no-imb: with equal classes they equal three-phase."""
    texts = [f"text {i} of class {i % 4}" for i in range(40)]
    labels = [i % 4 for i in range(40)]
    cl = CLConfig(pair_multiplier=3)
    three_phase, _ = pair_dataset(texts, labels, ImbalanceConfig(), cl, seed=1)
    extra_imb, _ = pair_dataset(texts, labels, ImbalanceConfig(max_ratio=20.0), cl, seed=1)
    no_imb, _ = pair_dataset(texts, labels, None, cl, seed=1)
    assert three_phase.to_dict() == extra_imb.to_dict() == no_imb.to_dict()
    # ...and on a long tail they differ, which is what the long-tail setting measures.
    tail = [0] * 30 + [1] * 6 + [2] * 4
    assert pair_dataset(texts, tail, ImbalanceConfig(), cl, seed=1)[0].to_dict() != \
        pair_dataset(texts, tail, None, cl, seed=1)[0].to_dict()


def test_table_marks_only_what_survives_holm_and_counts_the_intervals(tmp_path):
    from threephase.grid.report import comparisons

    def record(variant, seed, accuracy):
        return {"dataset": "snips2", "model": "m", "variant": variant, "seed": seed, "accuracy": accuracy / 100,
                "macro_f1": accuracy / 100}

    gains = [(80, 84, 79), (82, 86.2, 84), (81, 85, 80), (80, 84.1, 81), (83, 87, 82)]
    for seed, (ft, gain, noise) in enumerate(gains):
        for variant, accuracy in (("ft", ft), ("three-phase", gain), ("no-imb", noise)):
            folder = tmp_path / "long-tail" / "runs" / f"{variant}{seed}"
            folder.mkdir(parents=True)
            (folder / "results.json").write_text(json.dumps(record(variant, seed, accuracy)))
    df = summarize(tmp_path, settings=["long-tail"])
    assert comparisons(df) == {f"{m}_{k}": v for m in ("accuracy", "macro_f1")
                               for k, v in (("intervals", 2), ("uncorrected", 1), ("holm", 1))}
    table = to_markdown(df)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "+4.1" in rows["3-Phase"] and "✱" in rows["3-Phase"]
    assert "✱" not in rows["No Imb."] and "✱" not in rows["FT"]
    assert "2 such intervals" in table and "Holm" in table
    # Holm multiplies the smallest of m p-values by m: a lone p just under 0.05 does not survive two comparisons.
    assert df.loc[df["variant"] == "three-phase", "accuracy_p_holm"].item() == pytest.approx(
        2 * df.loc[df["variant"] == "three-phase", "accuracy_p_value"].item())


def test_smallest_form_end_to_end(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("THREEPHASE_DATA_DIR", str(data_dir))
    out = tmp_path / "help"
    # dae-ft and no-imb are the cheapest variants that show each setting's draw reaching phase 1 and phase 2.
    # few-shot draws as unlabelled does, less the unlabelled texts: two settings cover every path at CI's cost.
    args = ["experiment", "--size", "smallest", "--settings", "unlabelled,long-tail", "--datasets", "sst2",
            "--seeds", "2", "--variants", "dae-ft,no-imb,logreg", "--out", str(out), "--device", "cpu"]
    assert main(args) == 0
    for suffix in ("md", "csv", "png"):
        assert (out / f"phases_help.{suffix}").stat().st_size > 0
    df = pd.read_csv(out / "phases_help.csv")
    assert set(df["setting"]) == {"unlabelled", "long-tail"}
    assert set(df[df["setting"] == "long-tail"]["variant"]) == {"dae-ft", "no-imb", "ft", "logreg"}
    assert set(df[df["setting"] == "unlabelled"]["variant"]) == {"dae-ft", "ft", "logreg"}
    assert (df["n"] == 2).all()
    assert {f"{m}_{c}" for m in ("accuracy", "macro_f1") for c in ("vs_ft", "ci_low", "ci_high", "p_holm")} <= set(
        df.columns)
    # Each setting's runs carry its own draw: the long tail, the unlabelled texts for phase 1.
    tail = json.loads(next((out / "long-tail" / "runs").glob("*no-imb__seed0/metrics.json")).read_text())
    assert max(tail["class_sizes"].values()) >= 2 * min(tail["class_sizes"].values())
    unlabelled = json.loads(next((out / "unlabelled" / "runs").glob("*dae-ft__seed0/metrics.json")).read_text())
    assert unlabelled["phases"]["dae"]["examples"] == unlabelled["split_sizes"]["train"] + 16  # one pass
    # A second call skips every finished run and rewrites the same table.
    table = (out / "phases_help.csv").read_text()
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "skipped" in printed.out + printed.err and " ran " not in printed.out + printed.err
    assert (out / "phases_help.csv").read_text() == table
    assert summarize(out)["n"].sum() == len(df) * 2


def test_findings_quote_the_summary_and_the_resize_at_equal_pairs(tmp_path):
    from threephase.grid.report import findings, resize_at_equal_pairs

    def record(variant, seed, accuracy, pairs):
        return {"dataset": "snips2", "model": "m", "variant": variant, "seed": seed, "accuracy": accuracy / 100,
                "macro_f1": (accuracy - 5) / 100,
                "phases": {"cl": {"num_pairs": pairs}, "ft": {"best_validation_loss": 0.5, "chance_loss": 1.9459}}}

    for seed, (ft, extra, none) in enumerate([(70, 80, 71), (72, 83, 72), (71, 81, 70)]):
        for variant, accuracy in (("ft", ft), ("extra-imb", extra), ("no-imb", none)):
            folder = tmp_path / "long-tail-many-pairs" / "runs" / f"{variant}{seed}"
            folder.mkdir(parents=True)
            (folder / "results.json").write_text(json.dumps(record(variant, seed, accuracy, 900)))
    df = summarize(tmp_path, settings=["long-tail-many-pairs"])
    resize = resize_at_equal_pairs(tmp_path, settings=["long-tail-many-pairs"])
    text = findings(df, resize)
    assert "FT scores 71.0% accuracy" in text and "66.0% macro-F1" in text
    assert "0.50 nats, against 1.95" in text
    assert "The best by accuracy is Extra Imb., 81.3%" in text
    assert "trains on 900 pairs" in text
    extra = resize[(resize["variant"] == "extra-imb") & (resize["metric"] == "accuracy")].iloc[0]
    assert extra["diff"] == pytest.approx((9 + 11 + 11) / 3)
    assert f"Extra Imb. − No Imb. = +{extra['diff']:.1f}" in text


def test_the_figure_names_each_variant_once_whatever_the_number_of_settings(tmp_path):
    from threephase.grid.report import plot

    for setting in ("long-tail", "long-tail-few-pairs", "few-shot"):
        for seed in range(2):
            for variant, accuracy in (("ft", 70 + seed), ("no-imb", 72 + 2 * seed), ("cl-ft", 75)):
                folder = tmp_path / setting / "runs" / f"{variant}{seed}"
                folder.mkdir(parents=True)
                (folder / "results.json").write_text(json.dumps(
                    {"dataset": "snips2", "model": "m", "variant": variant, "seed": seed,
                     "accuracy": accuracy / 100, "macro_f1": accuracy / 100}))
    figure = plot(summarize(tmp_path, settings=["long-tail", "long-tail-few-pairs", "few-shot"]))
    labels = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    assert labels == ["CL+FT", "No Imb."]  # not once per column
