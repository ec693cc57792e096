"""``carvana predict``: one shard of the test set through the TTA ensemble, as RLE rows."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.stages._args import add_network_job_arguments, positive_int

HELP = "one shard of the test set through the TTA ensemble"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shard", type=positive_int, required=True, help="from 1")
    parser.add_argument("--shards", type=positive_int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--weights", type=Path, nargs="+", required=True, help="weights.pt of every member")
    parser.add_argument(
        "--thresholds-path", type=Path, required=True, help="thresholds.json of tuning: threshold, weights"
    )
    parser.add_argument("--out-path", type=Path, required=True, help="CSV of this shard's rows")
    add_network_job_arguments(parser, "CPU threads: the networks take what workers leave")
    parser.add_argument("--compile", action="store_true", help="torch.compile each network first")


def run(args: argparse.Namespace) -> None:
    from carvana.prediction.shard import ShardSpec, predict_shard
    from carvana.prediction.tta import TTASpec

    shard = ShardSpec(
        index=args.shard,
        count=args.shards,
        batch_size=args.batch_size,
        tta=TTASpec(hflip=args.hflip, vflip=args.vflip, scales=tuple(args.scales)),
        gpu=args.gpu,
        compile=args.compile,
        workers=args.workers,
    )
    import torch

    torch.set_num_threads(max(1, args.threads - args.workers))
    predict_shard(shard, args.data_dir, args.weights, args.thresholds_path, args.out_path)
