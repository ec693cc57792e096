"""A finished tiny run, made once per session, for the tests that read it or dry-run copies of it."""

from __future__ import annotations

import pytest
from workflow_runs import TINY, TINY_MODELS, FinishedRun, environ, snakemake, workflow_copy

FAKE_GPUS = "0,1"  # lock files only: the jobs lease these indices, and torch finds no CUDA


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """The tiny config end to end on two fake GPUs (every network job asks for one), with a copy
    of the package's source that the run imports, so that tests can edit it in their copies."""
    root = tmp_path_factory.mktemp("finished_run")
    models = {name: {**entry, "gpu": 1} for name, entry in TINY_MODELS.items()}
    work = workflow_copy(root, {**TINY, "models": models}, source=True)
    env = environ(work, CARVANA_GPU_DEVICES=FAKE_GPUS, CARVANA_GPU_LOCK_DIR=str(root / "locks"))
    result = snakemake(work, "--cores", "2", env=env)
    return FinishedRun(work, result.stdout + result.stderr)
