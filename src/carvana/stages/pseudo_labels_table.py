"""``carvana pseudo-labels-table``: one fold's label shards gathered into its table."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.layout import DatasetPaths

HELP = "gather one fold's label shards into its table"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard-dir", type=Path, nargs="+", required=True, help="the shards' folders, in order"
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out-path", type=Path, required=True, help="the fold's labels.csv")


def run(args: argparse.Namespace) -> None:
    from carvana.pseudo import gather_labels

    table = gather_labels(args.shard_dir, DatasetPaths(args.data_dir).sample_submission_path, args.out_path)
    print(f"{len(table)} pseudo labels from {len(args.shard_dir)} shards in {args.out_path}")
