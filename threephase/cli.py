"""Command line: ``python -m threephase run ...`` (and ``threephase run ...``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .config import VARIANTS
from .data import DATA_DIR_ENV, DATASETS
from .errors import ThreePhaseError
from .logs import quiet_logging
from .presets import PRESETS
from .presets import config_from_options as run_config  # noqa: F401 (the run command's, re-exported)


EPILOG = f"""\
datasets:  {', '.join(DATASETS)} (from the Hugging Face Hub, or from --data-dir / ${DATA_DIR_ENV})
variants:  {', '.join(VARIANTS)}
presets:   {', '.join(PRESETS)} (cpu: all-MiniLM-L6-v2 on a stratified subset, minutes on a laptop;
           paper: the paper's best hyperparameters per dataset and model)

examples:
  python -m threephase run --dataset snips2 --variant three-phase --preset cpu --output runs/snips2-3p
  python -m threephase run --data-dir my_csv_folder --variant ft --preset cpu --seed 1 --output runs/mine
  python -m threephase run --dataset sst2 --preset paper --set ft.learning_rate=2e-5 --output runs/sst2
  python -m threephase compare --help     # does 3-Phase help on your data? every method against FT
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threephase", description="3-Phase fine-tuning of Transformer text classifiers.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,reproduce,experiment,search,compare}")
    run = commands.add_parser("run", help="train one variant and write its run record", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--dataset", help=f"one of {', '.join(DATASETS)}; with --data-dir, its subfolder if present")
    run.add_argument("--data-dir", help="a folder with train.csv [validation.csv, test.csv, labels.json], a "
                     "folder of such folders, or one .csv, .tsv, .jsonl, .json or .parquet file (validation and test "
                     "are then carved from it)")
    run.add_argument("--text-column", help="text column of your data (default: text)")
    run.add_argument("--label-column", help="label column of your data (default: label)")
    run.add_argument("--model", help="Hub id or local folder of the body (default: the preset's)")
    run.add_argument("--variant", choices=VARIANTS, metavar="VARIANT",
                     help=f"one of {', '.join(VARIANTS)} (default: --config's, else three-phase)")
    run.add_argument("--preset", choices=PRESETS, metavar="PRESET",
                     help=f"one of {', '.join(PRESETS)}: it fills what --config does not set (default: --config's, "
                          "else cpu)")
    run.add_argument("--seed", type=int, help="drives python, numpy, torch, noise, resizing, pairs (default: "
                     "--config's, else 42)")
    run.add_argument("--output", required=True, help="run folder to write (config.json, metrics.json, classifier/); "
                     "always this folder, whatever output_dir a --config file holds")
    run.add_argument("--config", help="JSON file of settings, nested or dotted keys, e.g. a saved config.json. Order: "
                     "the preset, then this file, then the flags given here (--dataset, --model, --variant, --seed, "
                     "--device, ...), then --set; the file's output_dir is ignored")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override one setting, e.g. --set ft.learning_rate=2e-5 (repeatable; applied last)")
    run.add_argument("--device", help="cpu or cuda (default: cuda when available); for another GPU, set "
                     "CUDA_VISIBLE_DEVICES")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    run.add_argument("--resume", action="store_true",
                     help="continue a killed run in --output from its finished phases and newest checkpoint "
                          "(same settings, same data: both are checked); a finished run just reports its metrics, and a "
                          "folder that does not exist starts afresh (with a warning)")
    from .grid.reproduce import add_reproduce_parser

    add_reproduce_parser(commands)
    from .grid.experiment import add_experiment_parser

    add_experiment_parser(commands)
    from .grid.search import add_search_parser

    add_search_parser(commands)
    from .grid.compare import add_compare_parser

    add_compare_parser(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    from .pipeline import run

    config = run_config(args)
    if args.resume and args.overwrite:
        raise ThreePhaseError("--resume continues a run and --overwrite starts it again: pass one of them.")
    metrics = run(config, overwrite=args.overwrite, resume=args.resume).metrics
    summary = {k: round(metrics[k], 4) for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1")}
    print(json.dumps({"output": config.output_dir, "variant": config.variant, **summary}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    quiet_logging()
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "experiment":
            from .grid.experiment import experiment_command

            return experiment_command(args)
        if args.command == "search":
            from .grid.search import search_command

            return search_command(args)
        if args.command == "compare":
            from .grid.compare import compare_command

            return compare_command(args)
        from .grid.reproduce import reproduce_command

        return reproduce_command(args)
    except ThreePhaseError as err:
        print(f"threephase: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        again = ("rerun the same command with --resume to continue" if args.command == "run" else
                 "rerun the same command: finished cells are skipped and the others continue")
        print("threephase: interrupted. The run folder keeps the finished phases and the newest checkpoint (and no "
              f"metrics.json): {again}.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
