"""Test-time augmentation by flips, every view of a batch in one forward, at one or more scales.

Views are made on the images themselves, before the network's input is built (the original
UNet's mirror padding is not symmetric, so flipping a padded input would move the image), and
each view's logits are flipped back before the views are averaged as probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from carvana import schema

# view -> axes flipped, for (H, W, C) images and for the last two axes of (N, C, H, W) tensors
FLIPS = {"identity": (), "hflip": ("width",), "vflip": ("height",), "hvflip": ("height", "width")}


@dataclass(frozen=True)
class TTASpec:
    """Which views to average over: the image itself, plus horizontal and/or vertical flips, each
    at every scale of the model's input size (``ModelSpec.at_scale``; 1 is the trained size)."""

    hflip: bool = schema.default("predict.tta.hflip")
    vflip: bool = schema.default("predict.tta.vflip")
    scales: tuple[float, ...] = tuple(schema.default("predict.tta.scales"))

    def __post_init__(self) -> None:
        if not self.scales or any(not scale > 0 for scale in self.scales):
            raise ValueError(f"TTA scales must be one or more positive numbers, got {list(self.scales)}")
        if len(set(self.scales)) != len(self.scales):
            raise ValueError(f"TTA scales repeat: {list(self.scales)}")

    def views(self) -> list[str]:
        views = ["identity"]
        if self.hflip:
            views.append("hflip")
        if self.vflip:
            views.append("vflip")
        if self.hflip and self.vflip:
            views.append("hvflip")
        return views


def flip_image(image: npt.NDArray[np.generic], view: str) -> npt.NDArray[np.generic]:
    """An (H, W) or (H, W, C) image seen as ``view``; applying it twice gives the image back."""
    axes = tuple({"height": 0, "width": 1}[axis] for axis in FLIPS[view])
    return np.flip(image, axis=axes) if axes else image


def flip_tensor(batch: torch.Tensor, view: str) -> torch.Tensor:
    """An (N, C, H, W) batch seen as ``view``; applying it twice gives the batch back."""
    dims = tuple({"height": -2, "width": -1}[axis] for axis in FLIPS[view])
    return torch.flip(batch, dims=dims) if dims else batch


def tta_inputs(
    images: list[npt.NDArray[np.uint8]],
    views: list[str],
    to_input: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]],
) -> npt.NDArray[np.float32]:
    """The network inputs of every view of every image, view-major: (V * N, C, H', W')."""
    return np.stack(
        [to_input(np.ascontiguousarray(flip_image(image, view))) for view in views for image in images]
    )


def merge_views(logits: torch.Tensor, views: list[str]) -> torch.Tensor:
    """View-major logits (V * N, 1, H, W) -> mean probability over the views, (N, 1, H, W) float32."""
    if logits.shape[0] % len(views):
        raise ValueError(f"{logits.shape[0]} logits do not split into {len(views)} views")
    parts = torch.split(logits.float(), logits.shape[0] // len(views))
    return torch.stack(
        [flip_tensor(torch.sigmoid(part), view) for part, view in zip(parts, views, strict=True)]
    ).mean(dim=0)
