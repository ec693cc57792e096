"""The shell every workflow job runs in: bash's strict mode, and the pipeline's own ``carvana``.

Rules call ``carvana <stage>`` by name, so a job finds whichever ``carvana`` comes first on PATH.
``.venv/bin/snakemake ...`` from a shell without the venv on PATH must still work, so each job's
shell puts the folder of the commands of the Python that runs Snakemake first on PATH (the venv's
``bin/``), when the pipeline is installed there. Under ``--sdm conda`` or ``--sdm apptainer`` a
job runs in an environment of its own, whose ``carvana`` must win: PATH is then left alone.
"""

from __future__ import annotations

import shlex
import sysconfig
from collections.abc import Iterable
from pathlib import Path

STRICT = "set -euo pipefail; "  # Snakemake's own prefix for bash, which a custom prefix replaces
OWN_ENVIRONMENTS = frozenset({"CONDA", "APPTAINER"})  # deployment methods that bring their own carvana


def scripts_dir() -> Path:
    """Where this Python installs its packages' commands (``.venv/bin`` in the venv)."""
    return Path(sysconfig.get_path("scripts"))


def shell_prefix(deployment_methods: Iterable[str], commands_dir: Path | None = None) -> str:
    """The text Snakemake puts before every job's shell command.

    ``deployment_methods``: the names of the run's software deployment methods (``CONDA``,
    ``APPTAINER``, ``ENV_MODULES``); ``commands_dir``: where this Python's ``carvana`` is
    (default: :func:`scripts_dir`)."""
    folder = scripts_dir() if commands_dir is None else commands_dir
    if OWN_ENVIRONMENTS & {name.upper() for name in deployment_methods}:
        return STRICT
    if not (folder / "carvana").is_file():
        return STRICT  # installed elsewhere (a user site): PATH decides, as it would by hand
    return f'{STRICT}export PATH={shlex.quote(str(folder))}:"$PATH"; '
