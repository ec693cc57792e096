"""GPU devices for the workflow's network jobs: a lease per job, and the default GPU budget.

Snakemake caps how many GPU jobs run at once (``--resources gpu=K``) but never says which device a
job should use. So every job that runs a network starts through ``carvana with-gpus``: it leases
free device indices with non-blocking ``flock`` locks, one lock file per device in a folder that
every job on the machine shares, sets ``CUDA_VISIBLE_DEVICES`` to the leased indices and replaces
itself with the job's command. The locked files stay open across ``exec``, so the lease lasts
exactly as long as the job's process, however it ends (a kill included): the kernel drops the
locks when the last process holding them exits. A job that cannot get all the devices it needs
lets go of the ones it got and tries again, so two multi-GPU jobs cannot each hold half a pair.

The device pool is, in order: ``CARVANA_GPU_DEVICES`` (a comma list, used by tests with fake
devices), the caller's ``CUDA_VISIBLE_DEVICES``, or every GPU the NVIDIA driver lists. Under a Slurm
job the pool is the job's own devices (``CUDA_VISIBLE_DEVICES``, set by Slurm) and the lock folder
is the job's own, so a Snakemake run inside one allocation still gives each network job its own
device, and separate Slurm jobs on one node, each numbering its devices from 0, never collide.

The workflow profile (``profiles/default``) calls :func:`profile_resources` to set ``gpu`` to the
number of devices in the pool, unless the run goes to a cluster executor, whose jobs each get
their own machine's GPUs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEVICES_ENV = "CARVANA_GPU_DEVICES"
LOCK_DIR_ENV = "CARVANA_GPU_LOCK_DIR"
LOCAL_EXECUTORS = ("local", "dryrun", "touch")


def device_pool(environ: Mapping[str, str] | None = None) -> list[str]:
    """The device indices (or UUIDs) a job may lease on this machine, in order."""
    environ = os.environ if environ is None else environ
    for name in (DEVICES_ENV, "CUDA_VISIBLE_DEVICES"):
        if name in environ:
            return [device.strip() for device in environ[name].split(",") if device.strip()]
    return [str(index) for index in range(_driver_gpu_count())]


def _driver_gpu_count() -> int:
    """GPUs the NVIDIA driver lists, without initialising CUDA in this process (a job's
    ``CUDA_VISIBLE_DEVICES`` must be set before CUDA starts). 0 where there is no driver."""
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=30, check=True
        )
        return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))
    except (OSError, subprocess.SubprocessError):
        gpus = Path("/proc/driver/nvidia/gpus")
        return len(list(gpus.iterdir())) if gpus.is_dir() else 0


def default_lock_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder of lock files, shared by every user's jobs on this machine. Under a Slurm job,
    one folder per job: its devices are its own, numbered from 0 like another job's."""
    environ = os.environ if environ is None else environ
    if LOCK_DIR_ENV in environ:
        return Path(environ[LOCK_DIR_ENV])
    folder = Path(tempfile.gettempdir()) / "carvana-gpu-locks"
    if "SLURM_JOB_ID" in environ:
        return folder / f"slurm-{environ['SLURM_JOB_ID']}"
    return folder


@dataclass
class Lease:
    """Devices held by this process: ``fds`` are the locked files, open until the job ends."""

    devices: list[str]
    fds: list[int]

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _lock_path(lock_dir: Path, device: str) -> Path:
    return lock_dir / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', device)}.lock"


def _open_lock_dir(lock_dir: Path) -> None:
    if not lock_dir.is_dir():
        lock_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            lock_dir.chmod(0o1777)  # every user's jobs share it, as /tmp is shared


def _open_lock(path: Path) -> int:
    """The lock file, opened read-only (flock needs no write access); created readable by all
    when missing. An existing file is opened without O_CREAT, which a sticky /tmp refuses on
    another user's file under fs.protected_regular."""
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, 0o644)  # whatever the umask: other users' jobs read it to lock it
        return fd


def try_lease(count: int, pool: Sequence[str], lock_dir: Path) -> Lease | None:
    """``count`` free devices of ``pool``, locked, or None (holding nothing) if fewer are free.

    One job probes at a time (an exclusive lock on ``probe.lock`` for the few milliseconds of the
    probe): a job that must let go of devices it locked while finding too few free would
    otherwise make another job, probing at that moment, see those devices busy and wait.
    """
    _open_lock_dir(lock_dir)
    probe = _open_lock(lock_dir / "probe.lock")
    try:
        fcntl.flock(probe, fcntl.LOCK_EX)
        return _probe(count, pool, lock_dir)
    finally:
        os.close(probe)  # closing releases the probe lock


def _probe(count: int, pool: Sequence[str], lock_dir: Path) -> Lease | None:
    lease = Lease([], [])
    for device in pool:
        fd = _open_lock(_lock_path(lock_dir, device))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        lease.devices.append(device)
        lease.fds.append(fd)
        if len(lease.devices) == count:
            return lease
    lease.release()
    return None


def lease(
    count: int,
    pool: Sequence[str],
    lock_dir: Path,
    poll_s: float = 0.5,
    on_wait: Callable[[], None] | None = None,
) -> Lease:
    """Wait until ``count`` devices of ``pool`` are free and lock them. ``on_wait`` is called
    once, when the first try finds too few free."""
    if not 0 < count <= len(pool):
        raise ValueError(f"cannot lease {count} of {len(pool)} devices {list(pool)}")
    waited = False
    while (held := try_lease(count, pool, lock_dir)) is None:
        if not waited and on_wait is not None:
            on_wait()
        waited = True
        time.sleep(poll_s)
    return held


def run_with_gpus(
    granted: int,
    asked: int | None,
    command: Sequence[str],
    environ: Mapping[str, str] | None = None,
) -> None:
    """Lease ``granted`` devices, say which in the job's log, and replace this process with
    ``command``. ``granted`` is what Snakemake gave the job (``{resources.gpu}``, already cut to
    ``--resources gpu``); ``asked`` is what the model's entry asks for."""
    environ = dict(os.environ if environ is None else environ)
    if granted < 0:
        raise ValueError(f"--gpus must be >= 0, got {granted}")
    if asked is not None and asked > granted:
        _say(
            f"warning: this job asks for {asked} GPU(s) but --resources gpu={granted} allows "
            f"{granted}: it runs on {granted or 'the CPU'}; raise --resources gpu to give it all"
        )
    if granted == 0:
        environ["CUDA_VISIBLE_DEVICES"] = ""
        _say("GPU: none granted (gpu=0): the job runs on the CPU")
    else:
        pool = device_pool(environ)
        if not pool:
            _say("GPU: none visible on this machine: the job runs on the CPU")
        else:
            if granted > len(pool):
                _say(f"warning: {granted} GPU(s) granted but this machine has {len(pool)}: using {len(pool)}")
            lock_dir = default_lock_dir(environ)
            needed = min(granted, len(pool))
            held = lease(
                needed,
                pool,
                lock_dir,
                on_wait=lambda: _say(f"GPU: waiting for {needed} free of {','.join(pool)} ({lock_dir})"),
            )
            for fd in held.fds:
                os.set_inheritable(fd, True)  # the lock lives as long as the job's process
            environ["CUDA_VISIBLE_DEVICES"] = ",".join(held.devices)
            _say(f"GPU: leased device(s) {','.join(held.devices)} of {','.join(pool)}")
    sys.stdout.flush()
    os.execvpe(command[0], list(command), environ)


def _say(line: str) -> None:
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {line}", flush=True)


def profile_resources(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, int] | None:
    """The workflow profile's ``resources``: ``{"gpu": devices in the pool}`` for a run on this
    machine; None (no cap from the profile) when the command line or a ``--profile`` names a
    cluster executor, whose jobs each run on a machine of their own."""
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    executor = _named_executor(argv, environ)
    if executor is not None and executor not in LOCAL_EXECUTORS:
        return None
    return {"gpu": len(device_pool(environ))}


def _option_values(argv: Sequence[str], *names: str) -> list[str]:
    values = []
    for index, token in enumerate(argv):
        for name in names:
            if token == name and index + 1 < len(argv):
                values.append(argv[index + 1])
            elif name.startswith("--") and token.startswith(name + "="):
                values.append(token.split("=", 1)[1])
    return values


def _named_executor(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The executor the command line names, directly or through a ``--profile``."""
    direct = _option_values(argv, "--executor", "-e")
    if direct:
        return direct[-1]
    profiles = _option_values(argv, "--profile") or (
        [environ["SNAKEMAKE_PROFILE"]] if environ.get("SNAKEMAKE_PROFILE") else []
    )
    for profile in reversed(profiles):
        executor = _profile_executor(profile)
        if executor is not None:
            return executor
    return None


def _profile_executor(profile: str) -> str | None:
    """The ``executor`` of a profile, found as Snakemake finds it (profile.yaml, config.yaml and
    their versioned names, in the folder given or the user's and the site's config folders)."""
    import yaml
    from snakemake.cli import get_profile_dir  # type: ignore[import-untyped]

    found = get_profile_dir(profile)
    if found is None:
        return None
    try:
        loaded = yaml.safe_load(found[1].read_text())
    except yaml.YAMLError:
        return None
    executor = loaded.get("executor") if isinstance(loaded, dict) else None
    return str(executor) if executor is not None else None


def budget_notes(budget: int | None, asked: Mapping[str, int]) -> list[str]:
    """What to say before any job runs about the run's GPU budget (``--resources gpu``, None where
    nothing caps it) against the GPUs each config key asks for per job (``models.<name>.gpu``,
    ``predict.gpu``): that network jobs run on the CPU, or which keys Snakemake will silently cut."""
    if budget == 0 and any(asked.values()):
        return ["note: gpu=0 (no GPU on this machine): network jobs run on the CPU"]
    if budget is None:
        return []
    return [
        f"warning: {key} asks for {count} GPUs per job but --resources gpu={budget}: "
        f"those jobs get {budget}; raise --resources gpu to give them all"
        for key, count in asked.items()
        if count > budget
    ]
