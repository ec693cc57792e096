"""``carvana logged``: a job's command with all its output in the job's log, and its last line on
the console (every rule runs its command through it)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run a job's command with its output in its log; print its last line (every rule)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log", type=Path, required=True, help="the job's log file ({log}), replaced")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARG...")


def run(args: argparse.Namespace) -> None:
    from carvana.job_log import run_logged

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise ValueError("logged needs a command after --, e.g. carvana logged --log L -- carvana train ...")
    status = run_logged(command, args.log)
    if status:
        raise SystemExit(status)
