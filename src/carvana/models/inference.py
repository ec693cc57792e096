"""From an image to the network's input and its logits, the same way in training and prediction.

An image (H, W, 3) uint8 RGB is resized to the model's ``input_size``, normalised with ImageNet's
mean and standard deviation (VGG11's and smp's encoders expect them), and, for the unpadded UNet,
mirror-padded for its overlap tiles; the logits come back at ``input_size``, tiles stitched.
``carvana.prediction.ensemble`` turns them into probabilities at the image's own size.
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
        array = halve(array, size)
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    return np.asarray(cv2.resize(array, (width, height), interpolation=interpolation))


def halve(array: Pixels, size: tuple[int, int]) -> Pixels:
    """Average 2x2 blocks while both sides are even and stay at least twice ``size``. OpenCV's
    whole-factor path is several times faster than its general one (1918x1280 to 192x128: 2.3 ms
    against 6.8 ms in all); the result is close to one area resize but not equal to it (within a
    few grey levels), and training and prediction both shrink this way."""
    for _ in range(halvings(array.shape[:2], size)):
        array = half(array)
    return array


def halvings(shape: tuple[int, ...], size: tuple[int, int]) -> int:
    """How many times ``halve`` halves an array of ``shape`` on its way to ``size``."""
    height, width = shape[0], shape[1]
    count = 0
    while height % 2 == 0 and width % 2 == 0 and height >= 4 * size[0] and width >= 4 * size[1]:
        height, width, count = height // 2, width // 2, count + 1
    return count


def half(array: Pixels) -> Pixels:
    """``array`` at half its height and width, each pixel the mean of a 2x2 block."""
    return np.asarray(
        cv2.resize(array, (array.shape[1] // 2, array.shape[0] // 2), interpolation=cv2.INTER_AREA)
    )


def tile_grid(spec: ModelSpec) -> TileGrid | None:
    """The overlap tiles over an image at ``spec.input_size``; None for networks that take it whole."""
    if spec.tile_size is None:
        return None
    return TileGrid(spec.input_size, spec.tile_size, spec.border)


def normalise(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, ImageNet-normalised: ``(image - MEAN) / STD``
    written straight into the channels-first array, five times faster than converting, then
    normalising, then transposing (7 ms against 34 ms for a 1920x1280 image)."""
    planes = np.empty((3, *image.shape[:2]), dtype=np.float32)
    np.subtract(image.transpose(2, 0, 1), MEAN[:, None, None], out=planes)
    return np.divide(planes, STD[:, None, None], out=planes)


def network_input(image: npt.NDArray[np.uint8], spec: ModelSpec) -> npt.NDArray[np.float32]:
    """An image at ``spec.input_size`` (H, W, 3) uint8 -> the network's input (3, H', W') float32:
    the image itself, or for the unpadded UNet the image mirror-padded for its tiles."""
    if image.shape[:2] != spec.input_size:
        raise ValueError(f"image is {image.shape[:2]}, model {spec.name!r} takes {spec.input_size}")
    grid = tile_grid(spec)
    if grid is not None:
        image = mirror_pad(image, grid.padding)
    return normalise(image)


def logits_at_input_size(network: nn.Module, batch: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """Logits (N, 1, *spec.input_size) float32 for a batch of prepared inputs (N, 3, H', W')."""
    grid = tile_grid(spec)
    if grid is None:
        logits: torch.Tensor = network(batch)
        return logits.float()
    return predict_tiles(network, batch, grid)


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 convolutions in hardware (oneDNN's own test: AVX-512 and
    newer). Where it does, bf16 is about 2x faster than float32 for the offline default's
    networks; on a CPU with AVX2 only, bf16 is emulated and several times slower than float32
    (``benchmarks/precision.py`` measures both)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def mixed_precision_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``precision: auto`` means on ``device``: bf16 on GPUs that have it, fp16
    on older ones; on a CPU bf16 where it is computed in hardware, else None (float32)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else None


def autocast_for(precision: str, auto: torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype a network trained with ``precision`` (a model's ``precision:``) predicts
    in on ``device``: ``auto`` for auto, None (float32) for 32-true, bf16 for bf16-mixed (fp16 on
    a GPU without bf16), fp16 for 16-mixed on a GPU and ``auto`` on a CPU, which has no fast fp16."""
    if precision == "auto":
        return auto
    if precision == "32-true":
        return None
    if device.type == "cuda":
        bf16 = precision == "bf16-mixed" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float16
    return torch.bfloat16 if precision == "bf16-mixed" else auto
