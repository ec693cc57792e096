"""From an image to the network's input: ImageNet normalisation, channels first."""

from __future__ import annotations

import numpy as np

from carvana.models.inference import MEAN, STD, normalise


def test_normalise_is_the_imagenet_formula_channels_first_bit_for_bit() -> None:
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    planes = normalise(image)
    assert planes.shape == (3, 37, 53) and planes.dtype == np.float32 and planes.flags.c_contiguous
    expected = ((image.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)
    assert np.array_equal(planes, expected)


def test_normalise_maps_black_white_and_the_mean_to_their_standard_scores() -> None:
    image = np.array([[[0, 0, 0], [255, 255, 255], [124, 116, 104]]], dtype=np.uint8)  # 1 x 3 pixels
    planes = normalise(image)
    # (0 - 0.485 * 255) / (0.229 * 255) = -2.1179 for red, and so on
    np.testing.assert_allclose(planes[:, 0, 0], [-2.1179, -2.0357, -1.8044], atol=1e-4)
    np.testing.assert_allclose(planes[:, 0, 1], [2.2489, 2.4286, 2.6400], atol=1e-4)
    np.testing.assert_allclose(planes[:, 0, 2], 0, atol=0.02)  # 124, 116, 104 are the mean, rounded
