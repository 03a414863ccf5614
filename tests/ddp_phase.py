"""Run every phase on a tiny snips2 subset under torchrun; each process writes a hash of its weights after each one.

Used by tests/test_ddp.py: `torchrun --standalone --nproc_per_node 2 tests/ddp_phase.py DATA_DIR OUT_DIR`.
Rank 1 scores phase 3 on a validation split with shuffled labels: early stopping must still follow rank 0.
"""

import hashlib
import json
import os
import sys

import torch

from threephase import CLConfig, DAEConfig, FTConfig, load_body, load_data, train_cl, train_dae, train_ft, train_joint
from threephase.models import packaged_model_path


def weights_hash(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main(data_dir: str, out_dir: str) -> None:
    rank = int(os.environ.get("RANK", "0"))
    data = load_data(dataset="snips2", data_dir=data_dir, train_per_class=6, validation_per_class=3,
                     test_per_class=2, seed=0)
    validation = data["validation"]
    if rank == 1:  # a different view of validation on rank 1: only rank 0's scores may count
        labels = validation["label"]
        validation = validation.map(lambda _, i: {"label": labels[(i + 1) % len(labels)]}, with_indices=True)
    texts, labels = data["train"]["text"], data["train"]["label"]
    result = {}
    body = load_body(packaged_model_path(), max_seq_length=16)
    result["before"] = weights_hash(body)
    dae = train_dae(body, texts, DAEConfig(learning_rate=1e-4, num_train_epochs=1, per_device_train_batch_size=8),
                    seed=0)
    result["dae"] = weights_hash(body)
    cl = train_cl(body, texts, labels, CLConfig(learning_rate=1e-4, pair_multiplier=1, per_device_train_batch_size=8),
                  seed=0)
    result["cl"] = weights_hash(body)
    ft_config = FTConfig(learning_rate=1e-4, head_learning_rate=1e-2, num_train_epochs=3, min_epochs=1, patience=1,
                         per_device_train_batch_size=8)
    classifier, ft = train_ft(body, data["train"], validation, ft_config, seed=0)
    result["ft_body"], result["ft_head"] = weights_hash(classifier.body), weights_hash(classifier.head)
    result["ft_epochs"], result["ft_best_epoch"] = ft["epochs"], ft["best_epoch"]
    frozen, frozen_report = train_ft(classifier.body, data["train"], validation,
                                     FTConfig(num_train_epochs=3, min_epochs=1, patience=1, freeze_body=True), seed=1)
    result["frozen_head"], result["frozen_epochs"] = weights_hash(frozen.head), frozen_report["epochs"]
    joint_body = load_body(packaged_model_path(), max_seq_length=16)
    joint = train_joint(joint_body, texts, labels, DAEConfig(num_train_epochs=1),
                        CLConfig(learning_rate=1e-4, pair_multiplier=1, per_device_train_batch_size=8), seed=0)
    result["joint"] = weights_hash(joint_body)
    result["steps"] = {"dae": dae["steps"], "cl": cl["steps"], "ft": ft["steps"], "joint": joint["steps"]}
    result["world_size"] = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    result["backend"] = torch.distributed.get_backend() if torch.distributed.is_initialized() else None
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
