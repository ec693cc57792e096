"""GPU leases with fake devices: lock files only, no GPU needed.

Each job is a real ``carvana with-gpus`` process that records which devices it got and when it
held them; the checks are on those intervals.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carvana.gpus import default_lock_dir, device_pool, lease, profile_resources, try_lease

CARVANA = str(Path(sys.executable).parent / "carvana")

# What a job records: the devices it was given and the time it held them (seconds, monotonic
# clock shared by every process on the machine).
RECORD = (
    "import json, os, sys, time; start = time.monotonic(); time.sleep(float(sys.argv[2])); "
    "json.dump({'devices': os.environ['CUDA_VISIBLE_DEVICES'], 'start': start, "
    "'end': time.monotonic()}, open(sys.argv[1], 'w'))"
)


def _environ(lock_dir: Path, devices: str) -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if key != "SLURM_JOB_ID"}
    return {**environ, "CARVANA_GPU_DEVICES": devices, "CARVANA_GPU_LOCK_DIR": str(lock_dir)}


def _job(
    record: Path, environ: dict[str, str], gpus: int = 1, hold_s: float = 0.8, asked: int | None = None
) -> subprocess.Popen[str]:
    asked_args = ["--asked", str(asked)] if asked is not None else []
    command = [sys.executable, "-c", RECORD, str(record), str(hold_s)]
    return subprocess.Popen(
        [CARVANA, "with-gpus", "--gpus", str(gpus), *asked_args, "--", *command],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _first_line(job: subprocess.Popen[str]) -> str:
    assert job.stdout is not None
    return job.stdout.readline()


def _records(paths: list[Path]) -> list[dict[str, object]]:
    return [json.loads(path.read_text()) for path in paths]


def test_k_concurrent_jobs_never_share_a_device_and_the_rest_wait(tmp_path: Path) -> None:
    environ = _environ(tmp_path / "locks", "0,1")
    paths = [tmp_path / f"job{index}.json" for index in range(5)]
    jobs = [_job(path, environ) for path in paths]
    logs = [job.communicate(timeout=60)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0] * 5, logs
    records = _records(paths)
    assert {record["devices"] for record in records} == {"0", "1"}
    for a in records:
        overlapping = [b for b in records if b["start"] < a["end"] and a["start"] < b["end"]]  # type: ignore[operator]
        # a job overlaps itself and at most one other job, which holds the other device
        assert len(overlapping) <= 2
        assert len({b["devices"] for b in overlapping}) == len(overlapping)
    # five jobs of 0.8 s on two devices: three rounds, so the run spans at least 3 x 0.8 s
    span = max(r["end"] for r in records) - min(r["start"] for r in records)  # type: ignore[type-var, operator]
    assert span >= 3 * 0.8 - 0.05
    assert sum("GPU: waiting for 1 free of 0,1" in log for log in logs) >= 3
    assert all("GPU: leased device(s)" in log for log in logs)


def test_a_two_gpu_job_gets_two_distinct_devices_and_waits_for_both(tmp_path: Path) -> None:
    environ = _environ(tmp_path / "locks", "0,1,2")
    single = _job(tmp_path / "single.json", environ, gpus=1, hold_s=2.0)
    assert "GPU: leased device(s) 0 of 0,1,2" in _first_line(single)  # it holds device 0 first
    pair = _job(tmp_path / "pair.json", environ, gpus=2, hold_s=0.2)
    triple = _job(tmp_path / "triple.json", environ, gpus=3, hold_s=0.2)
    for job in (single, pair, triple):
        job.communicate(timeout=60)
        assert job.returncode == 0
    single_r, pair_r, triple_r = _records([tmp_path / f"{n}.json" for n in ("single", "pair", "triple")])
    assert single_r["devices"] == "0"
    assert pair_r["devices"] == "1,2"
    assert triple_r["devices"] == "0,1,2"
    assert triple_r["start"] >= max(single_r["end"], pair_r["end"])  # type: ignore[type-var]


def test_a_killed_job_frees_its_device_at_once(tmp_path: Path) -> None:
    environ = _environ(tmp_path / "locks", "0")
    holder = _job(tmp_path / "holder.json", environ, hold_s=60)
    assert "GPU: leased device(s) 0 of 0" in _first_line(holder)
    assert try_lease(1, ["0"], tmp_path / "locks") is None  # held by the running job
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    held = try_lease(1, ["0"], tmp_path / "locks")
    assert held is not None and held.devices == ["0"]
    held.release()


def test_gpu_zero_hides_every_device_and_a_cut_is_warned_about(tmp_path: Path) -> None:
    environ = {**_environ(tmp_path / "locks", "0,1"), "CUDA_VISIBLE_DEVICES": "0,1"}
    job = _job(tmp_path / "cpu.json", environ, gpus=0, hold_s=0, asked=2)
    log = job.communicate(timeout=60)[0]
    assert job.returncode == 0
    assert _records([tmp_path / "cpu.json"])[0]["devices"] == ""
    assert "asks for 2 GPU(s) but --resources gpu=0 allows 0: it runs on the CPU" in log
    assert not (tmp_path / "locks").exists()  # nothing leased


def test_jobs_in_one_slurm_allocation_share_its_devices_and_another_job_is_apart(tmp_path: Path) -> None:
    job_id = f"test-{os.getpid()}-{time.monotonic_ns()}"
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CARVANA_GPU")}
    environ = {**environ, "SLURM_JOB_ID": job_id, "CUDA_VISIBLE_DEVICES": "0,1"}
    lock_dir = default_lock_dir(environ)
    assert lock_dir.name == f"slurm-{job_id}"
    try:
        paths = [tmp_path / "a.json", tmp_path / "b.json", tmp_path / "other.json"]
        jobs = [_job(paths[0], environ), _job(paths[1], environ)]
        # another Slurm job on the node numbers its own device from 0 too: never made to wait
        jobs.append(
            _job(paths[2], {**environ, "SLURM_JOB_ID": f"{job_id}-other", "CUDA_VISIBLE_DEVICES": "0"})
        )
        for job in jobs:
            job.communicate(timeout=60)
            assert job.returncode == 0
        a, b, other = _records(paths)
        assert {a["devices"], b["devices"]} == {"0", "1"}
        assert other["devices"] == "0"
        assert other["start"] < max(a["end"], b["end"])  # type: ignore[operator]
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
