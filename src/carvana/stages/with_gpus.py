"""``carvana with-gpus``: a GPU job's command, run on the free devices it leases."""

from __future__ import annotations

import argparse

HELP = "lease free GPUs, set CUDA_VISIBLE_DEVICES and run a command (a GPU job)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpus", type=int, required=True, help="GPUs granted ({resources.gpu}); 0: the CPU")
    parser.add_argument("--asked", type=int, default=None, help="GPUs the model asks for: warned if more")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARG...")


def run(args: argparse.Namespace) -> None:
    from carvana.gpus import run_with_gpus

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise ValueError(
            "with-gpus needs a command after --, e.g. carvana with-gpus --gpus 1 -- carvana train ..."
        )
    run_with_gpus(args.gpus, args.asked, command)
