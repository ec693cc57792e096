"""The advice a job gives when CUDA runs out of memory (raised here on the CPU, as CUDA raises it)."""

from __future__ import annotations

import pytest
import torch

from carvana.failures import JobError, out_of_memory_advice

CUDA_MESSAGE = "CUDA out of memory. Tried to allocate 1.50 GiB. GPU 0 has a total capacity of 79.1 GiB\nmore"


def test_out_of_memory_names_what_ran_out_and_halves_the_batch() -> None:
    with pytest.raises(JobError) as caught, out_of_memory_advice("model 'm'", "models.m.batch_size", 12, "x"):
        raise torch.OutOfMemoryError(CUDA_MESSAGE)
    assert str(caught.value) == (
        "model 'm' ran out of GPU memory at batch size 12: set models.m.batch_size to 6 (it is 12). "
        "(CUDA out of memory. Tried to allocate 1.50 GiB. GPU 0 has a total capacity of 79.1 GiB)"
    )
    assert isinstance(caught.value.__cause__, torch.OutOfMemoryError)


def test_at_batch_size_one_the_advice_is_the_other_fix() -> None:
    with (
        pytest.raises(
            JobError,
            match=r"at batch size 1: one image is the smallest batch: lower models\.m\.input_size\. \(CUDA",
        ),
        out_of_memory_advice("model 'm'", "models.m.batch_size", 1, "lower models.m.input_size"),
    ):
        raise torch.OutOfMemoryError(CUDA_MESSAGE)


def test_a_batch_smaller_than_configured_is_halved_and_the_setting_named() -> None:
    """A shard's first batches are smaller than predict.batch_size: the advice halves the one that
    failed (3 -> 1), not the setting (16 -> 8), which would fail again."""
    with (
        pytest.raises(JobError, match=r"at batch size 3: set predict\.batch_size to 1 \(it is 16\)\. \(CUDA"),
        out_of_memory_advice("shard 1", "predict.batch_size", 3, "fewer views", configured=16),
    ):
        raise torch.OutOfMemoryError(CUDA_MESSAGE)


def test_other_errors_pass_through_unchanged() -> None:
    with pytest.raises(RuntimeError, match=r"^shape mismatch$"), out_of_memory_advice("m", "b", 4, "s"):
        raise RuntimeError("shape mismatch")
