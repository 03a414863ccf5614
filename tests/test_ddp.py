"""Every phase runs unchanged under torchrun: two CPU processes (gloo) train one model in step, and decide together."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


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
