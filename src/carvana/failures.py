"""Failures of a network job that a person must act on: the message says what to change.

The CLI prints a ``JobError`` as one message, without a traceback, and exits with status 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class JobError(RuntimeError):
    """A job stopped for a reason its message explains, with the fix."""


@contextmanager
def out_of_memory_advice(
    what: str, batch_key: str, batch_size: int, at_one: str, configured: int | None = None
) -> Iterator[None]:
    """Turn a CUDA out-of-memory error inside the block into a JobError naming ``what`` ran out,
    at which batch size, and the fix: config key ``batch_key`` at half that batch, or ``at_one``
    (what else to lower) when the batch was one image. ``configured`` is the key's value when the
    failing batch was smaller than it (a prediction shard's first batches)."""
    import torch

    try:
        yield
    except torch.OutOfMemoryError as error:
        setting = batch_size if configured is None else configured
        if batch_size > 1:
            fix = f"set {batch_key} to {batch_size // 2} (it is {setting})"
        else:
            fix = f"one image is the smallest batch: {at_one}"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "CUDA out of memory"
        raise JobError(
            f"{what} ran out of GPU memory at batch size {batch_size}: {fix}. ({reason})"
        ) from error
