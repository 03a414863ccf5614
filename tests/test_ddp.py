"""Phases run unchanged under torchrun: two CPU processes (gloo) train one model in step; a frozen body gets a clear error."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_two_process_ddp_keeps_weights_in_sync(tmp_path, data_dir):
    script = Path(__file__).with_name("ddp_phase.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), data_dir, str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and ranks[0]["backend"] == "gloo"
    assert ranks[0]["body"] != pytest.approx(ranks[0]["before"], rel=0, abs=1e-6), "phase 2 changed nothing"
    assert ranks[0]["body"] == pytest.approx(ranks[1]["body"], rel=1e-9)
    assert ranks[0]["head"] == pytest.approx(ranks[1]["head"], rel=1e-9)
    assert ranks[0]["cl_steps"] == ranks[1]["cl_steps"] > 0
    assert "freeze_body" in ranks[0]["frozen_error"] and "one process" in ranks[0]["frozen_error"]
