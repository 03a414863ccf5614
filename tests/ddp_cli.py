"""Run ``threephase run`` (the CLI, hence ``threephase.run``) under torchrun; each rank writes a hash of the
classifier it ends with, since only rank 0 saves one.

Used by tests/test_ddp.py: `torchrun --standalone --nproc_per_node 2 tests/ddp_cli.py OUT_FILE_PREFIX -- ARGS...`.
"""

import hashlib
import json
import os
import sys

import torch

import threephase.pipeline
from threephase.cli import main


def weights_hash(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


if __name__ == "__main__":
    prefix, argv = sys.argv[1], sys.argv[3:]
    results = []
    run = threephase.pipeline.run

    def keep(*args, **kwargs):
        results.append(run(*args, **kwargs))
        return results[-1]

    threephase.pipeline.run = keep  # the CLI imports run from the module when it is called
    code = main(argv)
    classifier = results[0].classifier if results else None
    record = {"code": code,
              "world_size": torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1,
              "body": classifier and weights_hash(classifier.body),
              "head": classifier and weights_hash(classifier.head),
              "phases": sorted(results[0].metrics["phases"]) if results else None}
    with open(f"{prefix}{os.environ.get('RANK', '0')}.json", "w") as handle:
        json.dump(record, handle)
    sys.exit(code)
