"""``carvana make-folds``: the training cars split into folds, whole cars to a fold."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.layout import DatasetPaths
from carvana.stages._args import schema_default

HELP = "split the training cars into folds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--folds-path", type=Path, required=True)
    parser.add_argument("--n-folds", type=int, default=schema_default("folds.n_folds"))
    parser.add_argument("--seed", type=int, default=schema_default("folds.seed"))
    parser.add_argument("--stratify", default=schema_default("folds.stratify"))


def run(args: argparse.Namespace) -> None:
    from carvana.folds import FoldSpec, make_folds

    spec = FoldSpec(n_folds=args.n_folds, seed=args.seed, stratify=args.stratify)
    table = make_folds(DatasetPaths(args.data_dir), spec, args.folds_path)
    sizes = table.groupby("fold")["car_id"].nunique().tolist()
    print(f"{spec.n_folds} folds by car (cars per fold: {sizes}) in {args.folds_path}")
