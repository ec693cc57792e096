"""The shell prefix of every workflow job: the pipeline's own ``carvana`` from any shell."""

from __future__ import annotations

import subprocess
from pathlib import Path

from carvana.job_shell import STRICT, scripts_dir, shell_prefix

BARE_PATH = "/usr/bin:/bin"  # a new user's shell: no venv on it


def run_in_job_shell(prefix: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", prefix + command],
        env={"PATH": BARE_PATH, "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_job_finds_this_pythons_carvana_from_a_path_without_it() -> None:
    assert run_in_job_shell(STRICT, "command -v carvana").returncode == 1  # not there by itself
    found = run_in_job_shell(shell_prefix([]), "command -v carvana")
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == scripts_dir() / "carvana"


def test_the_job_shell_keeps_strict_mode() -> None:
    failed = run_in_job_shell(shell_prefix([]), "false | cat; echo reached")
    assert failed.returncode == 1 and "reached" not in failed.stdout  # pipefail and -e
    unset = run_in_job_shell(shell_prefix([]), 'echo "$NOT_SET"; echo reached')
    assert unset.returncode == 1 and "reached" not in unset.stdout  # -u


def test_conda_and_container_jobs_keep_their_own_environment(tmp_path: Path) -> None:
    (tmp_path / "carvana").write_text("#!/bin/sh\n")
    assert shell_prefix(["CONDA"], tmp_path) == STRICT
    assert shell_prefix(["APPTAINER"], tmp_path) == STRICT
    assert shell_prefix(["ENV_MODULES"], tmp_path) == f'{STRICT}export PATH={tmp_path}:"$PATH"; '


def test_a_python_without_the_carvana_command_leaves_path_alone(tmp_path: Path) -> None:
    assert shell_prefix([], tmp_path) == STRICT


def test_a_folder_with_a_space_is_quoted(tmp_path: Path) -> None:
    folder = tmp_path / "my env" / "bin"
    folder.mkdir(parents=True)
    (folder / "carvana").write_text("#!/bin/sh\necho pipeline\n")
    (folder / "carvana").chmod(0o755)
    result = run_in_job_shell(shell_prefix([], folder), "carvana")
    assert result.stdout == "pipeline\n", result.stderr
