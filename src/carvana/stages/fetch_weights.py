"""``carvana fetch-weights``: the ImageNet weight files that models start from, fetched into the
libraries' caches through the libraries' own download and hash check."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from carvana.stages._args import config_models, read_config

HELP = "fetch the ImageNet weights that models start from into the libraries' caches"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument(
        "--weights", action="append", default=[], help="a file by key: vgg11, smp-<encoder>; repeat for each"
    )
    chosen.add_argument(
        "--config-file",
        type=Path,
        default=Path("config.yaml"),
        help="fetch what its models ask for, from its pretrained_weights mirror (the file alone, not merged)",
    )
    parser.add_argument("--base-url", default=None, help="of torchvision's files (a mirror's)")
    parser.add_argument("--hf-endpoint", default=None, help="the Hugging Face hub or a mirror of it")


def run(args: argparse.Namespace) -> None:
    from carvana.models.pretrained import WeightSource, file_of_key, files_by_key
    from carvana.models.spec import model_specs

    given: dict[str, Any] = {}  # the config file's mirror settings, which the flags override
    if args.weights:
        files = [file_of_key(key) for key in args.weights]
    else:
        given = read_config(args.config_file).get("pretrained_weights") or {}
        files = list(files_by_key(model_specs(config_models(args.config_file))).values())
        if not files:
            print(f"no model in {args.config_file} asks for pretrained weights: nothing to fetch")
    source = WeightSource(
        args.base_url or given.get("base_url"), args.hf_endpoint or given.get("hf_endpoint")
    )
    for file in files:
        print(file.fetch(source), flush=True)
