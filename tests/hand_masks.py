"""RLE decoding and Dice written out in plain NumPy for tests, apart from ``carvana.rle`` and
``carvana.metrics``, so that a test's expected answer never comes from the code it checks."""

from __future__ import annotations

import numpy as np


def decode(text: str, height: int, width: int) -> np.ndarray:
    """A competition RLE (1-indexed start, length pairs over the row-major image) as a bool mask;
    the empty string is an empty mask."""
    numbers = np.array(text.split(), dtype=np.int64)
    flat = np.zeros(height * width, dtype=bool)
    for start, length in zip(numbers[0::2], numbers[1::2], strict=True):
        flat[start - 1 : start - 1 + length] = True
    return flat.reshape(height, width)


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two bool masks; two empty masks score 1, as in the competition."""
    total = int(predicted.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2 * int((predicted & truth).sum()) / total
