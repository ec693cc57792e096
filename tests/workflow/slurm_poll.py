"""Snakemake, as ``python -m snakemake`` runs it, with the Slurm executor asking for its jobs'
states every ``POLL_S`` seconds.

snakemake-executor-plugin-slurm first checks 40 s after a submission, then waits 10 s longer
after every check that finds no job finished (40, 90, 150 s..., up to 180 s between checks; 1, 12,
33, 64 s... with ``--slurm-init-seconds-before-status-checks 1``): right for a cluster's hour-long
jobs, but the tests' jobs take seconds, so a stage of the tiny workflow waited 12-64 s for a job
that had ended. The Slurm tests run their Snakemake through this script instead; the
jobs, their submissions and what the plugin does with each state are the plugin's own.
"""

from __future__ import annotations

import asyncio

import snakemake_executor_plugin_slurm
from snakemake.cli import main

POLL_S = 2.0


async def _sleep(executor: snakemake_executor_plugin_slurm.Executor) -> None:
    await asyncio.sleep(POLL_S)


if __name__ == "__main__":
    snakemake_executor_plugin_slurm.Executor.sleep = _sleep  # type: ignore[method-assign]
    main()
