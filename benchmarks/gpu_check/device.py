"""The device measured: its dense peak (a data sheet's figure, or a matrix product timed here) and
its memory (the peak of a stretch of work, all there is, the allocator's cache given back)."""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.timing import synchronize
from carvana.models.inference import mixed_precision_dtype

# Dense (no sparsity) tensor-core TFLOP/s in the precision the pipeline uses there, from the
# vendors' data sheets: bf16, or fp16 on the devices without bf16. The first name contained in
# the device's name wins, so the longer names come first.
PEAK_TFLOPS = (
    ("H200 NVL", 835.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("V100", 125.0),  # fp16
    ("T4", 65.0),  # fp16
)


def peak(device: torch.device, given: float | None) -> dict[str, Any]:
    """The dense TFLOP/s the achieved figures are a share of, and where it comes from."""
    measured = matmul_tflops(device)
    if given is not None:
        return {"tflops": given, "source": "--peak-tflops", "matmul_tflops": measured}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in PEAK_TFLOPS:
            if key in name:
                return {"tflops": tflops, "source": f"data sheet ({key})", "matmul_tflops": measured}
    return {"tflops": measured, "source": "dense matrix product measured here", "matmul_tflops": measured}


def matmul_tflops(device: torch.device) -> float:
    """TFLOP/s of a large square matrix product in the networks' precision on ``device``: bf16 on
    a GPU (fp16 without it), float32 on a CPU without hardware bf16."""
    dtype = mixed_precision_dtype(device) or torch.float32
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = math.inf
    for _ in range(5):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * n**3 / best / 1e12


class Memory:
    """Peak memory of what runs between ``reset`` and ``peak_mib``: the caching allocator's peak
    on a GPU; on a CPU the process's resident high-water mark, reset through /proc."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # what was freed goes back: the RSS is what is in use
        with contextlib.suppress(OSError):  # not allowed: the peak is the process's so far
            Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM back to the current RSS

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        status = Path("/proc/self/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")) / 1024

    def capacity_mib(self) -> float:
        """All of the GPU's memory, or the memory this process may use (cgroup limit or RAM)."""
        if self.device.type == "cuda":
            return torch.cuda.get_device_properties(self.device).total_memory / 2**20
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        limit = Path("/sys/fs/cgroup/memory.max")
        if limit.is_file() and limit.read_text().strip().isdigit():
            total = min(total, int(limit.read_text()))
        return total / 2**20


def release(device: torch.device) -> None:
    """Gives the caching allocator's free blocks back to the GPU, so that the next measurement
    (its peak memory, the largest batch it fits) starts from what is in use."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
