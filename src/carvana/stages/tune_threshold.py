"""``carvana tune-threshold``: the ensemble's weights and threshold chosen on the OOF maps, the
networks that learnt nothing flagged, the ablation table written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carvana.stages._args import positive_int, schema_default

HELP = "choose the ensemble's weights and threshold on OOF maps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--folds-path", type=Path, required=True)
    parser.add_argument("--models-dir", type=Path, required=True, help="holds <model>/fold<k>/oof{,_plain}/")
    parser.add_argument("--model", action="append", required=True, help="an ensemble member; repeat for each")
    parser.add_argument(
        "--thresholds",
        type=float,
        nargs=3,
        default=schema_default("tune.thresholds.start", "tune.thresholds.stop", "tune.thresholds.step"),
        metavar=("START", "STOP", "STEP"),
    )
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument(
        "--weight",
        action="append",
        default=[],
        help="MODEL=W: that model's ensemble weight (1 when left out); repeat for each",
    )
    parser.add_argument(
        "--auto-weights", action="store_true", help="search the weights on a simplex grid, with the threshold"
    )
    parser.add_argument(
        "--weight-step",
        type=float,
        default=schema_default("ensemble.weight_step"),
        help="the grid's step; must divide 1",
    )
    parser.add_argument(
        "--min-dice",
        type=float,
        default=schema_default("tune.flag.min_dice"),
        help="a network below this OOF Dice is flagged",
    )
    parser.add_argument(
        "--max-gap",
        type=float,
        default=schema_default("tune.flag.max_gap"),
        help="flag a network this far below its model's other folds",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=schema_default("tune.threads"),
        help="processes that read and score the maps",
    )


def run(args: argparse.Namespace) -> None:
    from carvana.prediction.weights import parse_weights
    from carvana.tuning.flags import FlagRule
    from carvana.tuning.threshold import ThresholdGrid
    from carvana.tuning.tune import TunePaths, tune

    grid = ThresholdGrid(*args.thresholds)
    paths = TunePaths(args.data_dir, args.folds_path, args.models_dir, args.out_dir)
    flag = FlagRule(args.min_dice, args.max_gap)
    result = tune(
        paths,
        args.model,
        grid,
        parse_weights(args.weight),
        auto=args.auto_weights,
        weight_step=args.weight_step,
        flag=flag,
        threads=args.threads,
    )
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    for model, best in result["models"].items():
        print(f"{model}: OOF Dice {best['dice']:.5f} at threshold {best['threshold']:.2f}")
    weights = " ".join(f"{model}={weight:g}" for model, weight in result["weights"].items())
    left_out = f", without {', '.join(result['left_out'])}" if result["left_out"] else ""
    print(
        f"ensemble ({result['weights_chosen']} weights {weights}{left_out}): OOF Dice "
        f"{result['ensemble']['dice']:.5f} at threshold {result['threshold']:.2f} over "
        f"{result['images']} images; in {args.out_dir}"
    )
