"""The ensemble's prepared inputs: members that take the same input size but not the same input
(the unpadded UNet's mirror-padded tiles against a whole image) each get their own."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import torch
from torch import nn

from carvana.models.spec import ModelSpec
from carvana.prediction.ensemble import Ensemble, Member
from carvana.prediction.tta import TTASpec

# ImageNet's mean and standard deviation per RGB channel, in 8-bit units: what the networks see
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406]) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225]) * 255

# A tile of 204 = 16 * 5 + 124 gives an output of 20 (each stage's two 3x3 convolutions take 4:
# 204 -> 200, halved 100 -> 96, 48 -> 44, 22 -> 18, 9 -> 5, then doubled and less 4: 6, 8, 12, 20),
# a border of (204 - 20) / 2 = 92 pixels a side.
# Tiles of 204 x 252 give outputs of 20 x 68: over a 32 x 64 image, two rows of tiles (starting
# at 0 and 12, overlapping) by one column, which covers 68 columns, so the image is mirrored
# 92 pixels outward on each side plus 4 more on the right: 216 x 252.
BORDER = 92
PADDED = (32 + 2 * BORDER, 64 + 2 * BORDER + 4)


class CentreRedPlusOne(nn.Module):
    """An unpadded "network": a tile's centre, border trimmed, of its first channel, plus 1."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs[:, :1, BORDER:-BORDER, BORDER:-BORDER] + 1


class MinusGreen(nn.Module):
    """A padded "network": minus its input's second channel, less 0.5, at every pixel."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return -inputs[:, 1:2] - 0.5


def normalised(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """(H, W, 3) uint8 -> (3, H, W), ImageNet-normalised."""
    return ((image - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def sigmoid(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1 / (1 + np.exp(-logits))


@pytest.mark.parametrize("unet_first", [True, False])
def test_a_tiled_and_a_whole_image_member_at_one_input_size_each_get_their_own_inputs(
    unet_first: bool,
) -> None:
    unet = Member(
        ModelSpec.from_entry("u", {"arch": "unet", "input_size": [32, 64], "tile_size": [204, 252]}),
        0,
        CentreRedPlusOne(),
    )
    whole = Member(ModelSpec.from_entry("w", {"arch": "unet11", "input_size": [32, 64]}), 0, MinusGreen())
    members = [unet, whole] if unet_first else [whole, unet]
    ensemble = Ensemble(members, TTASpec(hflip=True), torch.device("cpu"), None)
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (32, 64, 3), dtype=np.uint8) for _ in range(2)]

    prepared = ensemble.prepare(images)
    assert len(prepared.inputs) == 2
    padded = prepared.inputs[ensemble.inputs_key(unet.spec)].numpy()
    plain = prepared.inputs[ensemble.inputs_key(whole.spec)].numpy()
    assert padded.shape == (2 * 2, 3, *PADDED)  # two views (identity, hflip) of two images, view-major
    assert plain.shape == (2 * 2, 3, 32, 64)
    for number, image in enumerate(images):  # the identity view of each image
        assert np.allclose(plain[number], normalised(image), atol=1e-5)
        assert np.allclose(padded[number, :, BORDER : BORDER + 32, BORDER : BORDER + 64], plain[number])
        # the mirror repeats the edge pixel: the row above the image is its first row
        assert np.array_equal(padded[number, :, BORDER - 1, BORDER : BORDER + 64], plain[number, :, 0])

    # both "networks" act on each pixel alone, so the flip views agree and the map is each image's
    # mean of sigmoid(red + 1) and sigmoid(-green - 0.5)
    got = ensemble.probabilities(images)
    for image, probability in zip(images, got, strict=True):
        red, green, _ = normalised(image)
        expected = (sigmoid(red + 1) + sigmoid(-green - 0.5)) / 2
        assert probability.shape == (32, 64)
        assert np.allclose(probability, expected, atol=1e-5)
