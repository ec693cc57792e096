"""``carvana import-files``: the competition's files from a folder (downloaded by hand, or the
kaggle source's archives), linked or unzipped into the dataset folder."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "link or unzip the competition's files from a folder (downloaded by hand or by the kaggle source)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source-dir", type=Path, required=True, help="holds train/ or train.zip, ...")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--hq", action="store_true", help="take train_hq/test_hq images")


def run(args: argparse.Namespace) -> None:
    from carvana.data.local import LocalSpec, import_local

    import_local(LocalSpec(source_dir=args.source_dir, hq=args.hq), args.data_dir)
    print(f"imported {args.source_dir} into {args.data_dir}")
