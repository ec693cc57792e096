"""``carvana oof``: one training job's held-out images through the prediction path, with the
configured TTA and without it."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.stages._args import add_network_job_arguments

HELP = "one training job's held-out images through the prediction path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--folds-path", type=Path, required=True)
    parser.add_argument(
        "--run-dir",
        type=Path,
        required=True,
        help="the job's folder: reads weights.pt, writes oof/ and oof_plain/",
    )
    add_network_job_arguments(parser, "CPU threads: the network takes what workers leave")


def run(args: argparse.Namespace) -> None:
    import torch

    from carvana.prediction.oof import OofPaths, write_oof
    from carvana.prediction.tta import TTASpec

    torch.set_num_threads(max(1, args.threads - args.workers))
    tta = TTASpec(hflip=args.hflip, vflip=args.vflip, scales=tuple(args.scales))
    paths = OofPaths(args.data_dir, args.folds_path, args.run_dir)
    write_oof(paths, tta, args.batch_size, args.gpu, args.workers)
