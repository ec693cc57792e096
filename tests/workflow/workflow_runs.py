"""What the workflow tests share: tiny configs, a copy of the workflow, and running Snakemake on it.

Each run is Snakemake as a subprocess on a copy of the workflow in a temporary folder, so the
checkout's own results/ is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# Three models, one per required architecture, small enough to train in seconds on 96x64 images.
# unet is made to learn nothing (a learning rate of 1e-12): tuning must flag it and leave it out.
_TINY_RECIPES = {
    "unet": {
        **{"arch": "unet", "width": 0.0625, "input_size": [32, 48], "tile_size": [204, 220]},
        **{"epochs": 1, "batch_size": 4, "optimizer": {"name": "adam", "lr": 1e-12}},
    },
    "unet1024": {  # learns enough in 3 epochs that a transposed submission scores below it
        "arch": "unet1024",
        "width": 0.125,
        "input_size": [64, 64],
        "epochs": 3,
        "batch_size": 4,
        "optimizer": {"name": "adam", "lr": 0.003},
    },
    "unet11": {"arch": "unet11", "width": 0.125, "input_size": [32, 64], "epochs": 1, "batch_size": 4},
}
# Each on the CPU, in float32 on every CPU: under `auto`, a CPU that computes bf16 in hardware
# (AVX-512 BF16) trains in bf16, and the tiny networks learn less in their few steps (unet1024's
# fold 0 at 0.40 against 0.57), so that every network of a fold is flagged and the run stops at
# tuning.
TINY_MODELS = {name: {**entry, "gpu": 0, "precision": "32-true"} for name, entry in _TINY_RECIPES.items()}
TINY = {
    "synthetic": {"train_cars": 4, "test_cars": 2, "image_scale": 0.05, "seed": 11},
    "folds": {"n_folds": 2, "seed": 3},
    # three epochs on two cars leave unet1024's two folds far apart (OOF Dice 0.57 and 0.82): a
    # wider gap than a real run's is allowed, so that only the networks that learnt nothing are
    # flagged (unet at 0.39 and 0.35, the 1-epoch unet11 at 0.39 and 0.00)
    "tune": {"flag": {"min_dice": 0.45, "max_gap": 0.4}},
    "models": TINY_MODELS,
}


def workflow_copy(tmp_path: Path, config: dict[str, object] | None = None, source: bool = False) -> Path:
    """Copy the workflow (not its results) into tmp_path; overlay ``config`` on config.yaml.
    ``source``: copy the package's source too, which the runs then import (see ``environ``)."""
    work = tmp_path / "work"
    work.mkdir(parents=True)
    shutil.copy(ROOT / "Snakefile", work)
    shutil.copytree(ROOT / "workflow", work / "workflow")
    shutil.copytree(ROOT / "envs", work / "envs")
    shutil.copytree(ROOT / "profiles", work / "profiles")
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    for key, value in (config or {}).items():
        if isinstance(value, dict) and key != "models":  # models are replaced whole
            base[key] = {**base.get(key, {}), **value}
        else:
            base[key] = value
    (work / "config.yaml").write_text(yaml.safe_dump(base))
    if source:
        shutil.copytree(
            ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    return work


def environ(work: Path, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment of a run in ``work``: a PATH without the venv (as in a new user's shell:
    the jobs must find the pipeline's ``carvana`` on their own), the copy's source (if any) ahead
    of the installed package, and no GPU unless ``extra`` fakes some."""
    base = os.environ if base is None else base
    dropped = ("SLURM_JOB_ID", "CARVANA_GPU_DEVICES", "VIRTUAL_ENV")
    env = {key: value for key, value in base.items() if key not in dropped}
    env["PATH"] = path_without_venv(base.get("PATH", ""))
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    if (work / "src").is_dir():
        env["PYTHONPATH"] = str(work / "src")
    return {**env, **extra}


def path_without_venv(path: str) -> str:
    """``path`` without the venv's ``bin`` folder (``make test`` puts it first)."""
    return os.pathsep.join(part for part in path.split(os.pathsep) if part and Path(part) != BIN)


def copy_run(run: Path, destination: Path) -> Path:
    """A copy of a finished run that Snakemake sees as finished: times kept, links kept."""
    shutil.copytree(run, destination, symlinks=True)
    return destination


def edit_config(work: Path, change: Mapping[str, object]) -> None:
    """Set keys of the config of the run in ``work``, each named by its dotted path
    (``{"models.unet1024.epochs": 12}``)."""
    config = yaml.safe_load((work / "config.yaml").read_text())
    for dotted, value in change.items():
        *parents, key = dotted.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[key] = value
    (work / "config.yaml").write_text(yaml.safe_dump(config))


def snakemake(
    work: Path,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout_s: int = 600,
    program: tuple[str, ...] = ("-m", "snakemake"),
) -> subprocess.CompletedProcess[str]:
    """Run Snakemake in ``work`` (environment: ``env``, else ``environ(work)``), for at most
    ``timeout_s`` seconds; ``program`` is what the interpreter runs."""
    env = environ(work) if env is None else env
    result = subprocess.run(
        [sys.executable, *program, *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if check and result.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


class FinishedRun(NamedTuple):
    work: Path  # the workflow copy, with its source in work/src and its results
    output: str  # what Snakemake printed
