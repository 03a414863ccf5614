"""Command line: ``python -m threephase run ...`` (and ``threephase run ...``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from .config import VARIANTS, apply_overrides, parse_set_options, read_json_overrides
from .data import DATA_DIR_ENV, DATASETS
from .errors import ThreePhaseError
from .presets import PRESETS, preset_config

EPILOG = f"""\
datasets:  {', '.join(DATASETS)} (from the Hugging Face Hub, or from --data-dir / ${DATA_DIR_ENV})
variants:  {', '.join(VARIANTS)}
presets:   {', '.join(PRESETS)} (cpu: all-MiniLM-L6-v2 on a stratified subset, minutes on a laptop;
           paper: the paper's best hyperparameters per dataset and model)

examples:
  python -m threephase run --dataset snips2 --variant three-phase --preset cpu --output runs/snips2-3p
  python -m threephase run --data-dir my_csv_folder --variant ft --preset cpu --seed 1 --output runs/mine
  python -m threephase run --dataset sst2 --preset paper --set ft.learning_rate=2e-5 --output runs/sst2
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threephase", description="3-Phase fine-tuning of Transformer text classifiers.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,reproduce,experiment,search}")
    run = commands.add_parser("run", help="train one variant and write its run record", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--dataset", help=f"one of {', '.join(DATASETS)}; with --data-dir, its subfolder if present")
    run.add_argument("--data-dir", help="a folder with train.csv [validation.csv, test.csv, labels.json] or a "
                     "folder of such folders, or one CSV file")
    run.add_argument("--text-column", help="text column of your data (default: text)")
    run.add_argument("--label-column", help="label column of your data (default: label)")
    run.add_argument("--model", help="Hub id or local folder of the body (default: the preset's)")
    run.add_argument("--variant", default="three-phase", choices=VARIANTS, metavar="VARIANT",
                     help=f"one of {', '.join(VARIANTS)} (default: three-phase)")
    run.add_argument("--preset", default="cpu", choices=PRESETS, metavar="PRESET",
                     help=f"one of {', '.join(PRESETS)} (default: cpu)")
    run.add_argument("--seed", type=int, default=42, help="drives python, numpy, torch, noise, resizing, pairs")
    run.add_argument("--output", required=True, help="run folder to write (config.json, metrics.json, classifier/)")
    run.add_argument("--config", help="JSON file of settings, nested or dotted keys (applied after the preset)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override one setting, e.g. --set ft.learning_rate=2e-5 (repeatable; after --config)")
    run.add_argument("--device", help="cpu or cuda (default: cuda when available); for another GPU, set "
                     "CUDA_VISIBLE_DEVICES")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    run.add_argument("--resume", action="store_true",
                     help="continue a killed run in --output from its finished phases and newest checkpoint "
                          "(same settings); a finished run just reports its metrics")
    from .reproduce import add_reproduce_parser

    add_reproduce_parser(commands)
    from .experiment import add_experiment_parser

    add_experiment_parser(commands)
    from .search import add_search_parser

    add_search_parser(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    from .pipeline import run

    dataset = args.dataset if args.dataset or args.data_dir else "snips2"
    config = preset_config(args.preset, dataset, args.model, variant=args.variant, seed=args.seed,
                           output_dir=args.output)
    explicit = {"data.data_dir": args.data_dir, "data.text_column": args.text_column,
                "data.label_column": args.label_column, "device": args.device}
    config = apply_overrides(config, {k: v for k, v in explicit.items() if v is not None})
    if args.config:
        config = apply_overrides(config, read_json_overrides(args.config))
    config = apply_overrides(config, parse_set_options(args.set))
    if args.resume and args.overwrite:
        raise ThreePhaseError("--resume continues a run and --overwrite starts it again: pass one of them.")
    metrics = run(config, overwrite=args.overwrite, resume=args.resume).metrics
    summary = {k: round(metrics[k], 4) for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1")}
    print(json.dumps({"output": args.output, "variant": config.variant, **summary}))
    return 0


def quiet_logging() -> None:
    """threephase's messages at INFO, the libraries' at WARNING (also in the reproduction's worker processes)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "huggingface_hub", "sentence_transformers", "transformers", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    quiet_logging()
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "experiment":
            from .experiment import experiment_command

            return experiment_command(args)
        if args.command == "search":
            from .search import search_command

            return search_command(args)
        from .reproduce import reproduce_command

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
