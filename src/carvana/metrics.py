"""The competition's metric: Dice = 2|X n Y| / (|X| + |Y|) per image, averaged over images.

Two empty masks score 1 (the prediction is exactly right), as Kaggle's evaluation does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # imported where it is used: the stages that score masks never load torch
    import torch


def dice(prediction: npt.NDArray[np.generic], truth: npt.NDArray[np.generic]) -> float:
    """Dice of two (height, width) masks, nonzero as foreground."""
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction is {prediction.shape}, truth is {truth.shape}")
    predicted, true = prediction.astype(bool), truth.astype(bool)
    total = int(predicted.sum()) + int(true.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(predicted, true).sum()) / total


def dice_per_image(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Dice of each image of a batch: (N, ...) masks, nonzero as foreground -> (N,) float32."""
    import torch

    predicted = prediction.reshape(prediction.shape[0], -1) != 0
    true = truth.reshape(truth.shape[0], -1) != 0
    intersection = (predicted & true).sum(dim=1).float()
    total = predicted.sum(dim=1).float() + true.sum(dim=1).float()
    return torch.where(total > 0, 2 * intersection / total.clamp(min=1), torch.ones_like(total))
