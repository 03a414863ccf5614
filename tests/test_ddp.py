"""Every phase runs unchanged under torchrun: two CPU processes (gloo) train one model in step, and decide together."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ddp_cli import weights_hash  # tests/ is on sys.path (pytest's default import mode)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("ddp")
    script = Path(__file__).with_name("ddp_phase.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), data_dir, str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_two_processes_with_gloo(ranks):
    assert [r["world_size"] for r in ranks] == [2, 2] and ranks[0]["backend"] == "gloo"
    assert all(steps > 0 for steps in ranks[0]["steps"].values())
    assert ranks[0]["steps"] == ranks[1]["steps"]


@pytest.mark.parametrize("phase", ["dae", "cl", "ft_body", "ft_head", "joint", "frozen_head"])
def test_ranks_hold_the_same_weights_after_each_phase(ranks, phase):
    assert ranks[0][phase] == ranks[1][phase], f"the ranks' weights differ after {phase}"


@pytest.mark.parametrize("phase, before", [("dae", "before"), ("cl", "dae"), ("joint", "before")])
def test_each_phase_changes_the_body(ranks, phase, before):
    assert ranks[0][phase] != ranks[0][before]


def test_early_stopping_follows_rank_0(ranks):
    # Rank 1 scored a validation split with shuffled labels; the recorded scores and the chosen epoch are rank 0's.
    assert ranks[0]["ft_epochs"] == ranks[1]["ft_epochs"]
    assert ranks[0]["ft_best_epoch"] == ranks[1]["ft_best_epoch"]
    assert ranks[0]["frozen_epochs"] == ranks[1]["frozen_epochs"]


# Through the command line, so that threephase.run sets the processes up: a frozen-body phase 3 with no trainer phase
# before it used to crash on rank 1 (no process group yet, so rank 1 got no validation scores from rank 0); the
# three-phase case runs every phase, a trained body in phase 3 included. Both run in one torchrun launch, the frozen
# case first, so that it still starts without a process group.
CLI_VARIANTS = {"ft frozen": ["--variant", "ft", "--set", "ft.freeze_body=true"],
                "three-phase": ["--variant", "three-phase"]}


def test_the_cli_under_torchrun_gives_every_rank_the_same_classifier(tmp_path, data_dir):
    script = Path(__file__).with_name("ddp_cli.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    tiny = [f"--set={setting}" for setting in (
        "data.train_per_class=4", "data.validation_per_class=2", "data.test_per_class=2", "max_seq_length=16",
        "ft.num_train_epochs=2", "ft.min_epochs=1", "ft.patience=1", "dae.per_device_train_batch_size=8",
        "cl.per_device_train_batch_size=8", "ft.per_device_train_batch_size=8", "cl.pair_multiplier=1",
        "dae.num_train_epochs=1", "save_steps=0")]
    commands = [arg for k, case in enumerate(CLI_VARIANTS) for arg in (
        "--", "run", "--dataset", "snips2", "--data-dir", data_dir, "--preset", "cpu", "--seed", "0",
        "--output", str(tmp_path / f"run{k}"), *CLI_VARIANTS[case], *tiny)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
               str(tmp_path / "rank"), *commands]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    from threephase import ThreePhaseClassifier

    assert [len(r) for r in ranks] == [len(CLI_VARIANTS)] * 2
    for k, case in enumerate(CLI_VARIANTS):
        first, second = ranks[0][k], ranks[1][k]
        assert [first["world_size"], second["world_size"]] == [2, 2] and [first["code"], second["code"]] == [0, 0]
        assert first["head"] == second["head"] and first["body"] == second["body"], case
        assert first["phases"] == second["phases"] == (["cl", "dae", "ft"] if case == "three-phase" else ["ft"])
        assert (tmp_path / f"run{k}" / "metrics.json").is_file()
        saved = ThreePhaseClassifier.from_pretrained(tmp_path / f"run{k}", device="cpu")
        assert weights_hash(saved.head) == first["head"], case


def test_deciding_together_without_a_process_group_is_refused(monkeypatch):
    from threephase.errors import ThreePhaseError
    from threephase.training import from_main_process

    monkeypatch.setenv("WORLD_SIZE", "2")  # launched as two processes, but no group was joined
    with pytest.raises(ThreePhaseError, match="init_processes"):
        from_main_process({"accuracy": 1.0})
