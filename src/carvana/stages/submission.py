"""``carvana submission``: the prediction shards gathered in sample_submission order."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.layout import DatasetPaths

HELP = "gather the shards in sample_submission order"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shard-path", type=Path, nargs="+", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out-path", type=Path, required=True, help="submission.csv.gz")


def run(args: argparse.Namespace) -> None:
    from carvana.submission import gather

    rows = gather(args.shard_path, DatasetPaths(args.data_dir).sample_submission_path, args.out_path)
    print(f"{rows} rows from {len(args.shard_path)} shards in {args.out_path}")
