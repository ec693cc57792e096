"""A one-node Slurm cluster for the tests: munge, slurmctld and slurmd in one folder, two fake GPUs.

Debian's ``slurm-wlm`` and ``munge`` packages (``make test`` installs them) run here as a real
cluster: jobs are ``sbatch`` submissions, scheduled by slurmctld, started by slurmd, with GRES GPUs.
The GPUs are device files that point at ``/dev/null`` (Slurm drops a GPU whose ``File=`` is not a
character device), so a job sees ``CUDA_VISIBLE_DEVICES`` set by Slurm and no CUDA device at all.

Everything lives in one folder: config, keys, sockets, state, logs and the daemons' pid files. The
clients find the config through ``SLURM_CONF``. Snakemake's Slurm plugin clears ``SLURM_*``
variables before its inner ``srun``, so the folder's ``bin/srun`` puts ``SLURM_CONF`` back and
runs the real one: a run puts ``bin/`` first on PATH. :func:`cluster` starts the daemons, waits
for the node to be idle and stops them all, by their pid files, however the test ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
GPUS = 2
CPUS = 16  # more than this machine has: the node's size comes from the config, not the hardware
MEMORY_MB = 256_000  # enough for the Slurm profile's largest request (64 GB per training job)
START_TIMEOUT_S = 30


@dataclass(frozen=True)
class Cluster:
    root: Path  # the cluster's folder

    @property
    def conf(self) -> Path:
        return self.root / "etc/slurm.conf"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def environ(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` with this cluster's config and its ``srun`` first on PATH."""
        return {**base, "SLURM_CONF": str(self.conf), "PATH": f"{self.bin}{os.pathsep}{base.get('PATH', '')}"}

    def command(self, *args: str, timeout_s: float = 30) -> str:
        """A Slurm client command (``squeue``, ``scancel``, ``sacct``...) against this cluster."""
        result = subprocess.run(
            list(args),
            env=self.environ(dict(os.environ)),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
        return result.stdout

    def jobs(self) -> list[dict[str, str]]:
        """The jobs slurmctld knows of, pending, running or recently ended: id, name, state and
        comment (where Snakemake's plugin names the rule and wildcards)."""
        out = self.command("squeue", "--me", "--noheader", "--states=all", "--format=%i|%j|%T|%k")
        rows = [line.split("|") for line in out.splitlines() if line.strip()]
        return [{"id": r[0], "name": r[1], "state": r[2], "comment": r[3]} for r in rows]

    def log(self, daemon: str) -> str:
        path = self.root / f"log/{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def binary(name: str) -> str | None:
    """Where Slurm's or munge's program ``name`` is: on PATH, or in /usr/sbin and /sbin, where
    Debian puts the daemons and which a user's PATH often lacks."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def missing_binaries() -> list[str]:
    return [name for name in (*DAEMONS, "sbatch", "srun", "squeue", "scancel") if binary(name) is None]


def require_slurm() -> None:
    """Skip the test where Slurm is not installed; fail instead when the run requires it
    (``make test`` sets ``CARVANA_REQUIRE_SLURM=1`` after installing the packages)."""
    if os.geteuid() != 0:
        pytest.skip("slurmd starts each job as its user, which needs root")
    missing = missing_binaries()
    if missing:
        message = f"Slurm is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
        if os.environ.get("CARVANA_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _slurm_conf(root: Path, host: str, ctld_port: int, slurmd_port: int) -> str:
    return f"""\
ClusterName=carvana
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/run/munge.socket
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
GresTypes=gpu
MinJobAge=600
KillWait=5
SchedulerParameters=sched_interval=1
NodeName={host} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory={MEMORY_MB} Gres=gpu:{GPUS} State=UNKNOWN
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _write_tree(root: Path) -> None:
    for folder in ("etc", "bin", "run", "log", "state", "spool", "dev", "munge"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o700)
    for index in range(GPUS):
        (root / f"dev/nvidia{index}").symlink_to("/dev/null")
    host = socket.gethostname().split(".")[0]
    ctld_port, slurmd_port = _free_ports(2)
    (root / "etc/slurm.conf").write_text(_slurm_conf(root, host, ctld_port, slurmd_port))
    (root / "etc/gres.conf").write_text(f"AutoDetect=off\nName=gpu File={root}/dev/nvidia[0-{GPUS - 1}]\n")
    key = root / "munge/munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    srun = root / "bin/srun"
    srun.write_text(f'#!/bin/sh\nexport SLURM_CONF={root}/etc/slurm.conf\nexec {binary("srun")} "$@"\n')
    srun.chmod(0o755)


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop(root: Path) -> None:
    """Stop the daemons by their pid files: TERM, then KILL whatever outlives five seconds."""
    pids = [pid for name in reversed(DAEMONS) if (pid := _pid(root / f"run/{name}.pid")) is not None]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for pid in pids:
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie left by a daemon that has exited counts as gone
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def _wait_idle(cluster: Cluster) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.SubprocessError):
            state = cluster.command("sinfo", "--noheader", "--format=%T", timeout_s=5).strip()
            if state == "idle":
                return
        time.sleep(0.2)
    raise RuntimeError(
        f"the test cluster's node is {state or 'unknown'} after {START_TIMEOUT_S} s, not idle:\n"
        f"{cluster.log('slurmctld')[-2000:]}\n{cluster.log('slurmd')[-2000:]}"
    )


@contextlib.contextmanager
def cluster(root: Path) -> Iterator[Cluster]:
    """A fresh one-node cluster in ``root`` (which must not exist yet), stopped on exit."""
    root.mkdir(parents=True)
    _write_tree(root)
    handle = Cluster(root)
    env = handle.environ(dict(os.environ))
    try:
        subprocess.run(
            [
                str(binary("munged")),
                "--force",
                f"--key-file={root}/munge/munge.key",
                f"--socket={root}/run/munge.socket",
                f"--pid-file={root}/run/munged.pid",
                f"--log-file={root}/log/munged.log",
                f"--seed-file={root}/munge/munged.seed",
            ],
            env=env,
            check=True,
            timeout=START_TIMEOUT_S,
        )
        # -c: a clean start (no saved jobs); -i: ignore state it cannot read. Both fork and return.
        subprocess.run([str(binary("slurmctld")), "-c", "-i"], env=env, check=True, timeout=START_TIMEOUT_S)
        subprocess.run([str(binary("slurmd")), "-c"], env=env, check=True, timeout=START_TIMEOUT_S)
        _wait_idle(handle)
        yield handle
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):  # jobs a failed test left running
            handle.command("scancel", "--full", f"--user={os.getuid()}", timeout_s=10)
        _stop(root)
