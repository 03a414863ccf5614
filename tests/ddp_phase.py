"""Run phase 2 and phase 3 on a tiny snips2 subset under torchrun; each process writes a checksum of its weights.

Used by tests/test_ddp.py: `torchrun --standalone --nproc_per_node 2 tests/ddp_phase.py DATA_DIR OUT_DIR`.
"""

import json
import os
import sys

import torch

from threephase import CLConfig, FTConfig, ThreePhaseError, load_body, load_data, train_cl, train_ft
from threephase.models import packaged_model_path


def checksum(module: torch.nn.Module) -> float:
    return float(sum(p.detach().double().sum() for p in module.parameters()))


def main(data_dir: str, out_dir: str) -> None:
    data = load_data(dataset="snips2", data_dir=data_dir, train_per_class=6, validation_per_class=2,
                     test_per_class=2, seed=0)
    body = load_body(packaged_model_path(), max_seq_length=32)
    before = checksum(body)
    cl = train_cl(body, data["train"]["text"], data["train"]["label"],
                  CLConfig(learning_rate=1e-4, pair_multiplier=1, per_device_train_batch_size=8), seed=0)
    classifier, ft = train_ft(body, data["train"], data["validation"],
                              FTConfig(learning_rate=1e-4, head_learning_rate=1e-2, num_train_epochs=1,
                                       min_epochs=1, per_device_train_batch_size=8), seed=0)
    # DDP on CPU cannot wrap a body without trainable weights: threephase must say so, not crash in the trainer.
    try:
        train_ft(classifier.body, data["train"], data["validation"],
                 FTConfig(num_train_epochs=1, min_epochs=1, per_device_train_batch_size=8, freeze_body=True), seed=1)
        frozen_error = None
    except ThreePhaseError as err:
        frozen_error = str(err)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else -1
    result = {"rank": rank, "world_size": torch.distributed.get_world_size() if rank >= 0 else 1,
              "backend": torch.distributed.get_backend() if rank >= 0 else None,
              "before": before, "body": checksum(classifier.body), "head": checksum(classifier.head),
              "cl_steps": cl["steps"], "ft_steps": ft["steps"], "frozen_error": frozen_error}
    with open(os.path.join(out_dir, f"rank{os.environ.get('RANK', '0')}.json"), "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
