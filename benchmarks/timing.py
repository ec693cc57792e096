"""The machine a benchmark's figures were measured on, and wall-clock timing that waits for the
device: a GPU runs its kernels after the call that queued them returns, so a clock read without
``synchronize`` would time the queueing, not the work."""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable

import torch


def machine(device: torch.device) -> str:
    """The machine in words, as the figures record it: the GPU measured on (if any), the CPU's
    cores this process may use, torch's version."""
    cpu = platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0))
    name = f"{cores}-core {cpu} CPU"
    if device.type == "cuda":
        name = f"{torch.cuda.get_device_name(device)} GPU, {name}"
    return f"{name}, torch {torch.__version__}"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], object], device: torch.device, repeats: int = 2) -> float:
    """The best of ``repeats`` wall-clock times of ``function``, in seconds."""
    best = math.inf
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best
