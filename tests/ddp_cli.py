"""Run ``threephase run`` (the CLI, hence ``threephase.run``) under torchrun; each rank writes a hash of the
classifier it ends with, since only rank 0 saves one.

Used by tests/test_ddp.py: `torchrun --standalone --nproc_per_node 2 tests/ddp_cli.py OUT_FILE_PREFIX -- ARGS... [-- ARGS...]`.
"""

import json
import os
import sys

import torch
from ddp_phase import weights_hash  # torchrun puts this script's folder, tests/, first on sys.path

import threephase.pipeline
from threephase.cli import main


def split_commands(args: list[str]) -> list[list[str]]:
    """``-- ARGS -- ARGS ...`` -> the command lines, in order."""
    commands: list[list[str]] = []
    for arg in args:
        if arg == "--":
            commands.append([])
        else:
            commands[-1].append(arg)
    return commands


if __name__ == "__main__":
    # Several commands run one after the other in the same processes (one torchrun launch costs each rank its imports,
    # about 10 CPU seconds); only the first starts without a process group.
    prefix, commands = sys.argv[1], split_commands(sys.argv[2:])
    run = threephase.pipeline.run
    records, code = [], 0
    for argv in commands:
        results = []

        def keep(*args, **kwargs):
            results.append(run(*args, **kwargs))
            return results[-1]

        threephase.pipeline.run = keep  # the CLI imports run from the module when it is called
        code = main(argv)
        classifier = results[0].classifier if results else None
        records.append({"code": code,
                        "world_size": torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1,
                        "body": classifier and weights_hash(classifier.body),
                        "head": classifier and weights_hash(classifier.head),
                        "phases": sorted(results[0].metrics["phases"]) if results else None})
        if code:
            break
    with open(f"{prefix}{os.environ.get('RANK', '0')}.json", "w") as handle:
        json.dump(records, handle)
    sys.exit(code)
