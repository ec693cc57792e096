"""``carvana download``: one competition archive, with the kaggle CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.stages._args import schema_default

HELP = "fetch one competition archive with the kaggle CLI"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--competition", default=schema_default("kaggle.competition"))
    parser.add_argument("--file", required=True, help="e.g. train.zip")
    parser.add_argument("--archive-dir", type=Path, required=True)


def run(args: argparse.Namespace) -> None:
    from carvana.data.download import download
    from carvana.kaggle.client import KaggleCLI

    download(KaggleCLI(args.competition), args.file, args.archive_dir)
