"""From an image to a probability map and back, the same way in training, OOF and prediction.

An image (H, W, 3) uint8 RGB is resized to the model's ``input_size``, normalised with ImageNet's
mean and standard deviation (VGG11's and smp's encoders expect them), and, for the unpadded UNet,
mirror-padded for its overlap tiles. The network's logits at ``input_size`` become probabilities,
resized back to the image's own size.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from carvana.models.spec import ModelSpec
from carvana.models.tiling import TileGrid, mirror_pad, predict_tiles

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


Pixels = npt.NDArray[np.integer[Any] | np.floating[Any]]  # what OpenCV resizes


def resize(array: Pixels, size: tuple[int, int], nearest: bool = False) -> Pixels:
    """Resize (H, W) or (H, W, C) to ``size`` = (height, width): area averaging when shrinking,
    bilinear when growing, nearest neighbour for labels if asked."""
    if array.shape[:2] == size:
        return array
    height, width = size
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif height < array.shape[0] and width < array.shape[1]:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    return np.asarray(cv2.resize(array, (width, height), interpolation=interpolation))


def tile_grid(spec: ModelSpec) -> TileGrid | None:
    """The overlap tiles over an image at ``spec.input_size``; None for networks that take it whole."""
    if spec.tile_size is None:
        return None
    return TileGrid(spec.input_size, spec.tile_size, spec.border)


def normalise(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, ImageNet-normalised."""
    scaled = (image.astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(scaled.transpose(2, 0, 1))


def network_input(image: npt.NDArray[np.uint8], spec: ModelSpec) -> npt.NDArray[np.float32]:
    """An image at ``spec.input_size`` (H, W, 3) uint8 -> the network's input (3, H', W') float32:
    the image itself, or for the unpadded UNet the image mirror-padded for its tiles."""
    if image.shape[:2] != spec.input_size:
        raise ValueError(f"image is {image.shape[:2]}, model {spec.name!r} takes {spec.input_size}")
    grid = tile_grid(spec)
    if grid is not None:
        image = mirror_pad(image, grid.padding)
    return normalise(image)


def prepare_image(image: npt.NDArray[np.uint8], spec: ModelSpec) -> npt.NDArray[np.float32]:
    """An image of any size (H, W, 3) uint8 RGB -> the network's input (3, H', W') float32."""
    return network_input(np.asarray(resize(image, spec.input_size), dtype=np.uint8), spec)


def logits_at_input_size(network: nn.Module, batch: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """Logits (N, 1, *spec.input_size) float32 for a batch of prepared inputs (N, 3, H', W')."""
    grid = tile_grid(spec)
    if grid is None:
        logits: torch.Tensor = network(batch)
        return logits.float()
    return predict_tiles(network, batch, grid)


def probabilities_at(logits: torch.Tensor, size: tuple[int, int]) -> npt.NDArray[np.float32]:
    """Logits (H', W') -> probabilities (height, width) = ``size``, float32 in [0, 1]."""
    probabilities = torch.sigmoid(logits.float()).cpu().numpy()
    return np.asarray(np.clip(resize(probabilities, size), 0.0, 1.0), dtype=np.float32)
