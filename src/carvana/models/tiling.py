"""The overlap-tile strategy of the original UNet, for an image of any size.

An unpadded UNet maps an input tile of ``tile`` pixels to an output of ``tile - 2 * border``
pixels: the centre of its input. To predict every pixel of an image, the image is mirrored
outward by ``border`` pixels (and further, when the image is smaller than one output tile), and
tiles are taken so that their outputs cover the image; overlapping outputs are averaged.

All sizes are ``(height, width)``. The functions here are pure: numpy and torch arrays in, arrays
out, so the mapping can be checked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one image size lie.

    ``image_size``: the image's (height, width); ``tile_size``: the network's input (height,
    width); ``border``: pixels the network trims from each side. ``canvas_size`` is the region the
    output tiles cover: the image, grown to one output tile where the image is smaller.
    """

    image_size: tuple[int, int]
    tile_size: tuple[int, int]
    border: int

    def __post_init__(self) -> None:
        if min(self.image_size) < 1:
            raise ValueError(f"image size must be positive, got {self.image_size}")
        if min(self.output_size) < 1:
            raise ValueError(f"tile {self.tile_size} leaves no output after a border of {self.border}")

    @property
    def output_size(self) -> tuple[int, int]:
        return (self.tile_size[0] - 2 * self.border, self.tile_size[1] - 2 * self.border)

    @property
    def canvas_size(self) -> tuple[int, int]:
        return (max(self.image_size[0], self.output_size[0]), max(self.image_size[1], self.output_size[1]))

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """Mirror padding (top, bottom, left, right) that turns the image into the tiles' input."""
        extra_h = self.canvas_size[0] - self.image_size[0]
        extra_w = self.canvas_size[1] - self.image_size[1]
        return (self.border, self.border + extra_h, self.border, self.border + extra_w)

    @property
    def padded_size(self) -> tuple[int, int]:
        top, bottom, left, right = self.padding
        return (self.image_size[0] + top + bottom, self.image_size[1] + left + right)

    def origins(self) -> list[tuple[int, int]]:
        """Top-left corners of the tiles in the padded image, which are also the top-left corners
        of their outputs on the canvas. The fewest tiles that cover it, spread evenly."""
        rows = _starts(self.canvas_size[0], self.output_size[0])
        cols = _starts(self.canvas_size[1], self.output_size[1])
        return [(top, left) for top in rows for left in cols]


def _starts(length: int, step: int) -> list[int]:
    count = math.ceil(length / step)
    if count == 1:
        return [0]
    last = length - step
    return [round(i * last / (count - 1)) for i in range(count)]


def mirror_pad(image: np.ndarray, padding: tuple[int, int, int, int]) -> np.ndarray:
    """Mirror ``image`` (H, W) or (H, W, C) outward by (top, bottom, left, right) pixels.

    The edge pixel is repeated once (numpy's "symmetric"), as in the paper's figure; a padding
    wider than the image keeps mirroring.
    """
    top, bottom, left, right = padding
    widths = [(top, bottom), (left, right)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode="symmetric")


def predict_tiles(
    forward: Callable[[torch.Tensor], torch.Tensor], padded: torch.Tensor, grid: TileGrid
) -> torch.Tensor:
    """Run ``forward`` over the tiles of a padded batch and stitch its outputs.

    ``padded``: (N, C, *grid.padded_size); ``forward`` maps (N, C, *tile_size) to
    (N, K, *output_size). Returns (N, K, *grid.image_size), overlaps averaged, in float32.
    """
    if tuple(padded.shape[-2:]) != grid.padded_size:
        raise ValueError(f"padded batch is {tuple(padded.shape[-2:])}, the grid expects {grid.padded_size}")
    tile_h, tile_w = grid.tile_size
    out_h, out_w = grid.output_size
    total: torch.Tensor | None = None
    count = torch.zeros(grid.canvas_size, device=padded.device)
    for top, left in grid.origins():
        output = forward(padded[..., top : top + tile_h, left : left + tile_w]).float()
        if tuple(output.shape[-2:]) != (out_h, out_w):
            raise ValueError(
                f"a {grid.tile_size} tile gave {tuple(output.shape[-2:])}, expected {(out_h, out_w)}"
            )
        if total is None:
            total = output.new_zeros((*output.shape[:2], *grid.canvas_size))
        total[..., top : top + out_h, left : left + out_w] += output
        count[top : top + out_h, left : left + out_w] += 1
    assert total is not None  # origins() is never empty
    height, width = grid.image_size
    return (total / count)[..., :height, :width]
