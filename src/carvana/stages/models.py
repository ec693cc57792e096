"""``carvana models``: the configured models, each with its architecture, sizes and parameter
count (networks built, never trained: no weight file is read or fetched)."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.stages._args import config_models

HELP = "list the configured models with their parameter counts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-file", type=Path, default=Path("config.yaml"))


def run(args: argparse.Namespace) -> None:
    from carvana.models.build import build_model, count_parameters
    from carvana.models.spec import model_specs

    specs = model_specs(config_models(args.config_file))
    rows = [("model", "arch", "input (HxW)", "tile (HxW)", "parameters")]
    for spec in specs:
        arch = f"{spec.arch}/{spec.encoder}" if spec.encoder else spec.arch
        arch += f" x{spec.width:g}" if spec.width != 1 else ""
        tile = "x".join(map(str, spec.tile_size)) if spec.tile_size else "-"
        size = "x".join(map(str, spec.input_size))
        network = build_model(spec, load_pretrained=False)  # counted, not trained: no weight files
        rows.append((spec.name, arch, size, tile, f"{count_parameters(network):,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
