"""GPU leases with fake devices: lock files only, no GPU needed.

Each job is a real ``carvana with-gpus`` process whose command says which devices it got and holds
them until the test releases it. So the jobs that must overlap do, however slow the machine: the
test waits until a job holds its devices (``held``) before it starts the next step, and a job
gives its devices back only when the test creates its ``release`` file. The checks are on the
devices each job got and on the times it held them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from barrier import WAIT_S, signal_file, wait_until
from carvana.gpus import default_lock_dir, device_pool, lease, profile_resources, try_lease

CARVANA = str(Path(sys.executable).parent / "carvana")

# A job's command: it writes the devices it was given to ``held`` (whole, by a rename), holds them
# until ``release`` exists (at most a bound, then it fails), and records the devices and the time
# it held them (seconds, monotonic clock shared by every process on the machine) in ``record``.
HOLD = """
import json, os, sys, time
from pathlib import Path
record, held, release = (Path(arg) for arg in sys.argv[1:4])
start, devices = time.monotonic(), os.environ["CUDA_VISIBLE_DEVICES"]
held.with_suffix(".tmp").write_text(devices)
held.with_suffix(".tmp").replace(held)
while not release.exists():
    if time.monotonic() > start + float(sys.argv[4]):
        sys.exit(f"never released: {release}")
    time.sleep(0.01)
record.write_text(json.dumps({"devices": devices, "start": start, "end": time.monotonic()}))
"""


@dataclass
class Job:
    """A ``carvana with-gpus`` process running ``HOLD``; its files are in ``folder``."""

    folder: Path
    process: subprocess.Popen[bytes]

    def first_line(self) -> str:
        """What ``with-gpus`` printed first (that it leased, or that it waits), once printed."""
        log = self.folder / "log"
        text = wait_until(
            lambda: log.read_text() if "\n" in log.read_text() else "", f"a line in {log}", self.process
        )
        return text.partition("\n")[0]

    def holds(self) -> bool:
        return (self.folder / "held").exists()

    def devices(self) -> str:
        """The devices the job holds, once its command runs."""
        held = self.folder / "held"
        wait_until(held.exists, f"{self.folder.name} to hold its devices", self.process)
        return held.read_text()

    def release(self) -> None:
        signal_file(self.folder / "release")

    def finish(self) -> str:
        """What ``with-gpus`` and the command printed, once the job has ended well."""
        self.process.wait(timeout=WAIT_S)
        log = (self.folder / "log").read_text()
        assert self.process.returncode == 0, log
        return log

    def record(self) -> dict[str, object]:
        return dict(json.loads((self.folder / "record").read_text()))


@dataclass
class Jobs:
    """Starts jobs in ``root``; kills those still running when the test ends."""

    root: Path
    started: list[Job] = field(default_factory=list)

    def environ(self, devices: str) -> dict[str, str]:
        """A pool of fake ``devices`` (a comma list) whose lock files are in the test's folder."""
        environ = {key: value for key, value in os.environ.items() if key != "SLURM_JOB_ID"}
        return {**environ, "CARVANA_GPU_DEVICES": devices, "CARVANA_GPU_LOCK_DIR": str(self.root / "locks")}

    def start(
        self,
        name: str,
        environ: dict[str, str],
        gpus: int = 1,
        asked: int | None = None,
        released: bool = False,
    ) -> Job:
        """``carvana with-gpus --gpus GPUS -- HOLD``; ``released``: the command ends at once."""
        folder = self.root / name
        folder.mkdir()
        if released:
            signal_file(folder / "release")
        asked_args = ["--asked", str(asked)] if asked is not None else []
        files = [str(folder / file) for file in ("record", "held", "release")]
        command = [sys.executable, "-c", HOLD, *files, str(2 * WAIT_S)]
        with (folder / "log").open("wb") as log:
            process = subprocess.Popen(
                [CARVANA, "with-gpus", "--gpus", str(gpus), *asked_args, "--", *command],
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started.append(Job(folder, process))
        return self.started[-1]


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[Jobs]:
    started = Jobs(tmp_path)
    yield started
    for job in started.started:
        if job.process.poll() is None:
            job.process.kill()
            job.process.wait()


def _holders(jobs: list[Job], count: int) -> list[Job]:
    """The jobs of ``jobs`` that hold their devices, once at least ``count`` do."""

    def holding() -> list[Job]:
        found = [job for job in jobs if job.holds()]
        return found if len(found) >= count else []

    return wait_until(holding, f"{count} of the jobs to hold their devices")


def test_k_concurrent_jobs_never_share_a_device_and_the_rest_wait(jobs: Jobs) -> None:
    environ = jobs.environ("0,1")
    started = [jobs.start(f"job{index}", environ) for index in range(5)]
    # five jobs on two devices, each holding its device until released: rounds of two, two and one
    waiting = started
    for count in (2, 2, 1):
        holders = _holders(waiting, count)
        assert len(holders) == count
        assert len({job.devices() for job in holders}) == count  # one device each
        waiting = [job for job in waiting if job not in holders]
        # each of the rest tried while both devices were held (until released, below), so it waited
        lines = [job.first_line() for job in waiting]
        assert all("GPU: waiting for 1 free of 0,1" in line for line in lines), lines
        for job in holders:
            job.release()
            job.finish()
    logs = [job.finish() for job in started]
    assert all("GPU: leased device(s)" in log for log in logs)
    records = [job.record() for job in started]
    assert {record["devices"] for record in records} == {"0", "1"}
    for a in records:
        overlapping = [b for b in records if b["start"] < a["end"] and a["start"] < b["end"]]  # type: ignore[operator]
        # a job overlaps itself and at most one other job, which holds the other device
        assert len(overlapping) <= 2
        assert len({b["devices"] for b in overlapping}) == len(overlapping)


def test_a_two_gpu_job_gets_two_distinct_devices_and_waits_for_both(jobs: Jobs) -> None:
    environ = jobs.environ("0,1,2")
    single = jobs.start("single", environ, gpus=1)
    assert single.devices() == "0"  # held until released below
    pair = jobs.start("pair", environ, gpus=2)
    triple = jobs.start("triple", environ, gpus=3)
    assert pair.devices() == "1,2"
    assert "GPU: waiting for 3 free of 0,1,2" in triple.first_line()  # device 0 is still held
    pair.release()
    pair.finish()
    assert not triple.holds()  # devices 1 and 2 free are not three
    single.release()
    single.finish()
    assert triple.devices() == "0,1,2"
    triple.release()
    triple.finish()
    single_r, pair_r, triple_r = (job.record() for job in (single, pair, triple))
    assert triple_r["start"] >= max(single_r["end"], pair_r["end"])  # type: ignore[type-var]


def test_a_killed_job_frees_its_device_at_once(jobs: Jobs) -> None:
    holder = jobs.start("holder", jobs.environ("0"))  # never released
    assert holder.devices() == "0"
    assert try_lease(1, ["0"], jobs.root / "locks") is None  # held by the running job
    holder.process.send_signal(signal.SIGKILL)
    holder.process.wait(timeout=10)
    held = try_lease(1, ["0"], jobs.root / "locks")
    assert held is not None and held.devices == ["0"]
    held.release()


def test_gpu_zero_hides_every_device_and_a_cut_is_warned_about(jobs: Jobs) -> None:
    environ = {**jobs.environ("0,1"), "CUDA_VISIBLE_DEVICES": "0,1"}
    job = jobs.start("cpu", environ, gpus=0, asked=2, released=True)
    log = job.finish()
    assert job.record()["devices"] == ""
    assert "asks for 2 GPU(s) but --resources gpu=0 allows 0: it runs on the CPU" in log
    assert not (jobs.root / "locks").exists()  # nothing leased


def test_jobs_in_one_slurm_allocation_share_its_devices_and_another_job_is_apart(jobs: Jobs) -> None:
    job_id = f"test-{os.getpid()}-{time.monotonic_ns()}"
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CARVANA_GPU")}
    environ = {**environ, "SLURM_JOB_ID": job_id, "CUDA_VISIBLE_DEVICES": "0,1"}
    lock_dir = default_lock_dir(environ)
    assert lock_dir.name == f"slurm-{job_id}"
    try:
        a, b = jobs.start("a", environ), jobs.start("b", environ)
        assert {a.devices(), b.devices()} == {"0", "1"}  # both held until released below
        # another Slurm job on the node numbers its own device from 0 too: never made to wait
        other = jobs.start(
            "other", {**environ, "SLURM_JOB_ID": f"{job_id}-other", "CUDA_VISIBLE_DEVICES": "0"}
        )
        assert "GPU: leased device(s) 0 of 0" in other.first_line()
        assert other.devices() == "0"
        for job in (a, b, other):
            job.release()
            job.finish()
        assert other.record()["start"] < min(a.record()["end"], b.record()["end"])  # type: ignore[operator]
    finally:
        shutil.rmtree(lock_dir, ignore_errors=True)
        shutil.rmtree(lock_dir.with_name(f"slurm-{job_id}-other"), ignore_errors=True)


def test_the_pool_comes_from_the_override_then_cuda_visible_devices() -> None:
    assert device_pool({"CARVANA_GPU_DEVICES": "2, 5", "CUDA_VISIBLE_DEVICES": "0"}) == ["2", "5"]
    assert device_pool({"CUDA_VISIBLE_DEVICES": "GPU-a1,GPU-b2"}) == ["GPU-a1", "GPU-b2"]
    assert device_pool({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_leasing_more_devices_than_the_pool_has_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot lease 3 of 2 devices \['0', '1'\]"):
        lease(3, ["0", "1"], tmp_path)


def test_the_profile_counts_local_gpus_and_leaves_a_cluster_uncapped(tmp_path: Path) -> None:
    environ = {"CARVANA_GPU_DEVICES": "0,1,2", "HOME": str(tmp_path)}
    assert profile_resources(["snakemake", "--cores", "all"], environ) == {"gpu": 3}
    assert profile_resources(["snakemake", "-e", "local"], environ) == {"gpu": 3}
    assert profile_resources(["snakemake", "--executor", "slurm"], environ) is None
    assert profile_resources(["snakemake", "--executor=kubernetes"], environ) is None
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    (cluster / "config.yaml").write_text("executor: slurm\njobs: 10\n")
    assert profile_resources(["snakemake", "--profile", str(cluster)], environ) is None
    newer = tmp_path / "newer"  # Snakemake 9's own file name
    newer.mkdir()
    (newer / "profile.yaml").write_text("executor: kubernetes\n")
    assert profile_resources(["snakemake", f"--profile={newer}"], environ) is None
    assert profile_resources(["snakemake"], {**environ, "SNAKEMAKE_PROFILE": str(cluster)}) is None
    assert profile_resources(["snakemake"], {"CUDA_VISIBLE_DEVICES": "", "HOME": str(tmp_path)}) == {"gpu": 0}


def test_a_probe_in_progress_does_not_make_free_devices_look_busy(tmp_path: Path) -> None:
    import fcntl
    import threading

    from carvana.gpus import _lock_path, _open_lock

    lock_dir, pool = tmp_path / "locks", ["0", "1", "2"]
    held = try_lease(1, pool, lock_dir)  # another job holds device 0
    assert held is not None and held.devices == ["0"]
    # a job asking for three is mid-probe: it has locked 1 and 2 and is about to let them go
    probe = _open_lock(lock_dir / "probe.lock")
    fcntl.flock(probe, fcntl.LOCK_EX)
    transient = [_open_lock(_lock_path(lock_dir, device)) for device in ("1", "2")]
    for fd in transient:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    got: list[object] = []
    asker = threading.Thread(target=lambda: got.append(try_lease(2, pool, lock_dir)))
    asker.start()
    asker.join(timeout=0.3)
    assert asker.is_alive()  # it waits for the probe to end instead of seeing 1 and 2 busy
    for fd in (*transient, probe):
        os.close(fd)
    asker.join(timeout=10)
    (lease_,) = got
    assert lease_ is not None and lease_.devices == ["1", "2"]  # type: ignore[attr-defined]
    lease_.release()  # type: ignore[attr-defined]
    held.release()


def test_the_budget_notes_say_cpu_at_0_and_name_each_key_cut() -> None:
    from carvana.gpus import budget_notes

    asked = {"models.a.gpu": 2, "models.b.gpu": 1, "predict.gpu": 1}
    assert budget_notes(0, asked) == ["note: gpu=0 (no GPU on this machine): network jobs run on the CPU"]
    assert budget_notes(0, {"models.a.gpu": 0, "predict.gpu": 0}) == []
    assert budget_notes(None, asked) == []  # a cluster: nothing caps the jobs
    assert budget_notes(2, asked) == []
    cut = budget_notes(1, asked)
    assert cut == [
        "warning: models.a.gpu asks for 2 GPUs per job but --resources gpu=1: those jobs get 1; "
        "raise --resources gpu to give them all"
    ]
