"""``carvana train``: one configured model trained on one fold, resumable from its last checkpoint;
in a pseudo-labelling round, with its fold's pseudo labels too."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from carvana.stages._args import config_models, schema_default

if TYPE_CHECKING:
    from carvana.models.spec import ModelSpec

HELP = "train one configured model on one fold"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a model name under models: in the config")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model-json", help="the model's settings as JSON (the workflow passes these)")
    source.add_argument(
        "--config-file", type=Path, default=Path("config.yaml"), help="read the model from here"
    )
    parser.add_argument("--fold", type=int, required=True, help="the held-out fold, from 0")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--folds-path", type=Path, required=True)
    parser.add_argument(
        "--run-dir", type=Path, default=None, help="default: results/models/<model>/fold<fold>"
    )
    parser.add_argument(
        "--code", default="", help="digest of the training code: a checkpoint of other code is not resumed"
    )
    parser.add_argument(
        "--pseudo-labels",
        type=Path,
        default=None,
        help="a fold's pseudo labels folder (its labels.csv lists the masks): add its test images",
    )
    parser.add_argument(
        "--pseudo-share",
        type=float,
        default=schema_default("pseudo.share"),
        help="share of the labelled test images taken",
    )
    parser.add_argument(
        "--pseudo-select", choices=("confident", "random"), default=schema_default("pseudo.select")
    )
    parser.add_argument(
        "--pseudo-ratio",
        type=float,
        default=schema_default("pseudo.ratio"),
        help="pseudo-labelled images per epoch, per training image",
    )
    parser.add_argument(
        "--init-weights", type=Path, default=None, help="start from this weights.pt (the round before's)"
    )


def run(args: argparse.Namespace) -> None:
    from carvana.pseudo import RoundTraining
    from carvana.training.job import TrainPaths, train

    spec = _model_spec(args)
    run_dir = args.run_dir or Path("results/models") / spec.name / f"fold{args.fold}"
    pseudo = None
    if args.pseudo_labels:
        pseudo = RoundTraining(
            args.pseudo_labels, args.pseudo_share, args.pseudo_select, args.pseudo_ratio, args.init_weights
        )
    elif args.init_weights:
        raise ValueError("--init-weights starts a pseudo-labelling round: give --pseudo-labels too")
    train(spec, args.fold, TrainPaths(args.data_dir, args.folds_path, run_dir), args.code, pseudo)


def _model_spec(args: argparse.Namespace) -> ModelSpec:
    """The model's spec from --model-json (what the workflow passes) or its entry in --config-file."""
    from carvana.models.spec import ModelSpec

    if args.model_json:
        spec = ModelSpec.from_json(args.model_json)
        if spec.name != args.model:
            raise ValueError(f"--model is {args.model!r} but --model-json describes {spec.name!r}")
        return spec
    models = config_models(args.config_file)
    if args.model not in models:
        raise ValueError(f"no model {args.model!r} in {args.config_file}; configured: {', '.join(models)}")
    return ModelSpec.from_entry(args.model, models[args.model])
