"""``carvana pseudo-labels``: one shard of the test set labelled by one fold's networks of the
round before, for the next pseudo-labelling round."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.stages._args import add_network_job_arguments, positive_int, schema_default

HELP = "label the test images with one fold's networks, for the next round"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fold", type=int, required=True, help="every network must be of this fold")
    parser.add_argument("--shard", type=positive_int, default=1, help="from 1: this slice of the test set")
    parser.add_argument("--shards", type=positive_int, default=1)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--weights", type=Path, nargs="+", required=True, help="the fold's weights.pt files")
    parser.add_argument(
        "--thresholds-path", type=Path, required=True, help="thresholds.json of the round before's tuning"
    )
    parser.add_argument(
        "--out-dir", type=Path, required=True, help="the shard's folder: <img>.png and labels.csv, made whole"
    )
    parser.add_argument(
        "--band",
        type=float,
        default=schema_default("pseudo.band"),
        help="a pixel this near the threshold is uncertain",
    )
    add_network_job_arguments(parser, "CPU threads: the networks take what workers leave")


def run(args: argparse.Namespace) -> None:
    import torch

    from carvana.prediction.pseudo import PseudoSpec, write_pseudo_labels
    from carvana.prediction.tta import TTASpec

    tta = TTASpec(hflip=args.hflip, vflip=args.vflip, scales=tuple(args.scales))
    spec = PseudoSpec(tta, args.batch_size, args.gpu, args.workers, args.band)
    torch.set_num_threads(max(1, args.threads - args.workers))
    shard = (args.shard, args.shards)
    weights, thresholds = args.weights, args.thresholds_path
    write_pseudo_labels(spec, args.data_dir, weights, thresholds, args.fold, args.out_dir, shard)
