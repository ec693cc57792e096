"""The overlap-tile mapping: tiles cover every pixel of any image size, and stitching is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from carvana.models.geometry import unet_border
from carvana.models.tiling import TileGrid, mirror_pad, predict_tiles


def test_the_papers_tile_on_a_competition_image() -> None:
    # 572 -> 388 tiles over 1280x1918: ceil(1280/388) = 4 rows, ceil(1918/388) = 5 columns
    grid = TileGrid((1280, 1918), (572, 572), unet_border(572))
    assert grid.output_size == (388, 388)
    assert grid.padding == (92, 92, 92, 92)
    assert grid.padded_size == (1464, 2102)
    origins = grid.origins()
    assert len(origins) == 20
    assert sorted({top for top, _ in origins}) == [0, 297, 595, 892]  # the last ends at 1280 - 388
    assert max(left for _, left in origins) == 1918 - 388


@pytest.mark.parametrize("image_size", [(1, 1), (5, 7), (80, 120), (101, 99), (388, 389), (1280, 1918)])
def test_output_tiles_cover_every_pixel_of_any_image(image_size: tuple[int, int]) -> None:
    grid = TileGrid(image_size, (572, 572), 92)
    covered = np.zeros(grid.canvas_size, dtype=int)
    for top, left in grid.origins():
        assert top + grid.tile_size[0] <= grid.padded_size[0]  # every tile lies inside the padding
        assert left + grid.tile_size[1] <= grid.padded_size[1]
        covered[top : top + 388, left : left + 388] += 1
    assert covered.min() >= 1
    height, width = image_size
    assert grid.canvas_size == (max(height, 388), max(width, 388))


def test_mirror_pad_repeats_the_edge_and_keeps_mirroring_past_the_image() -> None:
    row = np.array([[1, 2, 3]])
    assert mirror_pad(row, (0, 0, 2, 2)).tolist() == [[2, 1, 1, 2, 3, 3, 2]]
    assert mirror_pad(row, (0, 0, 0, 7)).tolist() == [[1, 2, 3, 3, 2, 1, 1, 2, 3, 3]]
    rgb = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    padded = mirror_pad(rgb, (1, 2, 0, 0))
    assert padded.shape == (5, 3, 3)
    assert (padded[0] == rgb[0]).all() and (padded[3] == rgb[1]).all() and (padded[4] == rgb[0]).all()


def test_stitching_a_centre_crop_returns_the_image() -> None:
    # a "network" that returns the centre of its tile (what the unpadded UNet's geometry does)
    # must give back exactly the image it was tiled from, for a non-square image of several tiles
    grid = TileGrid((45, 70), (40, 52), 10)  # outputs 20x32: 3 rows, 3 columns, overlapping
    image = np.random.default_rng(0).random((45, 70)).astype(np.float32)
    padded = torch.from_numpy(mirror_pad(image, grid.padding))[None, None]

    def centre(tile: torch.Tensor) -> torch.Tensor:
        return tile[..., 10:-10, 10:-10]

    assert len(grid.origins()) == 9
    stitched = predict_tiles(centre, padded, grid)
    assert stitched.shape == (1, 1, 45, 70)
    assert torch.allclose(stitched[0, 0], torch.from_numpy(image))


def test_a_tile_with_no_output_is_rejected() -> None:
    with pytest.raises(ValueError, match="leaves no output"):
        TileGrid((10, 10), (100, 100), 50)
