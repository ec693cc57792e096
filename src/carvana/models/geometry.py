"""Which input sizes each architecture can take, without importing torch.

The workflow checks every configured model's sizes when it reads the config, before any job
runs; importing torch there would slow every ``snakemake`` call by seconds.
"""

from __future__ import annotations

import itertools

UNET_DEPTH = 4  # 2x2 poolings between the original UNet's first stage and its bottom


def _unet_trace(input_size: int) -> int | None:
    """Output side for an input side, or None when a pooling would see an odd or empty size."""
    size = input_size
    for _ in range(UNET_DEPTH):
        size -= 4
        if size <= 0 or size % 2:
            return None
        size //= 2
    size -= 4
    if size <= 0:
        return None
    for _ in range(UNET_DEPTH):
        size = size * 2 - 4
    return size if size > 0 else None


def unet_output_size(input_size: int) -> int:
    """Output side for an input side; ValueError naming the nearest valid sides otherwise.

    Valid input sides are 16k + 124 with k >= 4: 188 (giving 4), 204, ..., 572 (giving 388).
    """
    size = _unet_trace(input_size)
    if size is None:
        raise ValueError(f"UNet cannot take an input side of {input_size}: {unet_nearest_sizes(input_size)}")
    return size


def unet_nearest_sizes(size: int) -> str:
    """The valid input sides nearest to ``size``, for error messages."""
    below = next((s for s in range(size, 0, -1) if _unet_trace(s) is not None), None)
    above = next(s for s in itertools.count(max(size, 1)) if _unet_trace(s) is not None)  # every 16 from 188
    if below is None:
        return f"the smallest valid side is {above}"
    return f"the nearest valid sides are {below} and {above}"


def unet_border(input_size: int) -> int:
    """Pixels lost on each side: (input - output) / 2; 92 at the paper's 572 -> 388."""
    return (input_size - unet_output_size(input_size)) // 2


def nearest_multiples(size: int, divisor: int) -> str:
    """The multiples of ``divisor`` nearest to ``size``, for error messages."""
    below = size // divisor * divisor
    if below < divisor:
        return f"the smallest valid side is {divisor}"
    return f"the nearest valid sides are {below} and {below + divisor}"
