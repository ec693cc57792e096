"""Fold datasets: inputs and targets line up, for the padded networks and the UNet's tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carvana.data.images import read_mask
from carvana.folds import fold_images
from carvana.layout import DatasetPaths
from carvana.metrics import dice
from carvana.models.inference import MEAN, STD, resize
from carvana.models.spec import AugmentSpec, ModelSpec
from carvana.training.data import SegmentationDataset, augmentations

NO_AUGMENT = {"hflip_p": 0.0, "affine_p": 0.0, "color_p": 0.0}


def test_fold_images_split_by_the_folds_table(tmp_path: Path) -> None:
    folds = tmp_path / "folds.csv"
    folds.write_text("img,car_id,fold\nb_01.jpg,b,1\na_01.jpg,a,0\na_02.jpg,a,0\n")
    split = fold_images(folds, 0)
    assert (split.train, split.held_out) == (["b_01.jpg"], ["a_01.jpg", "a_02.jpg"])
    assert split.fold == 0  # the training job's fingerprint holds it
    assert fold_images(folds, 1) == type(split)(1, ["a_01.jpg", "a_02.jpg"], ["b_01.jpg"])
    with pytest.raises(ValueError, match=r"fold 2 is not in .*; its folds are \[0, 1\]"):
        fold_images(folds, 2)


def test_padded_network_items_are_the_resized_image_and_soft_mask(tiny_dataset) -> None:
    paths = DatasetPaths(tiny_dataset.data_dir)
    name = sorted(p.name for p in paths.train_dir.iterdir())[0]
    spec = ModelSpec.from_entry("m", {"arch": "unet1024", "input_size": [64, 128], "augment": NO_AUGMENT})
    inputs, target = SegmentationDataset(paths, [name], spec, train=True)[0]
    assert inputs.shape == (3, 64, 128) and target.shape == (1, 64, 128)
    mask = read_mask(paths.mask_path(name))
    expected = resize(mask.astype(np.float32), (64, 128))  # the share of each pixel the car covers
    assert np.allclose(target[0].numpy(), expected)
    values = target[0].numpy()
    edge = (values > 0) & (values < 1)
    assert values.min() == 0 and values.max() == 1 and edge.any()  # soft only along the outline


def test_the_soft_target_keeps_the_edge_that_a_nearest_neighbour_target_moves(tiny_dataset) -> None:
    # A network that predicted its training target exactly, brought back to the image's size and
    # thresholded at 0.5 as prediction does: the soft target loses about a point of Dice at a third
    # of the image's side; the nearest-neighbour one moves edges by up to half a pixel of the small
    # grid, 1.5 image pixels, and loses eight.
    paths = DatasetPaths(tiny_dataset.data_dir)
    names = sorted(p.name for p in paths.train_dir.iterdir())[:16]
    soft_dice, nearest_dice = [], []
    for name in names:
        mask = read_mask(paths.mask_path(name))
        small = (mask.shape[0] // 3, mask.shape[1] // 3)
        spec = ModelSpec.from_entry("m", {"arch": "unet", "input_size": list(small), "tile_size": [204, 204]})
        _, soft = SegmentationDataset(paths, [name], spec, train=False).read(0)
        nearest = resize(mask, small, nearest=True).astype(np.float32)
        soft_dice.append(dice(resize(soft, mask.shape) > 0.5, mask))
        nearest_dice.append(dice(resize(nearest, mask.shape) > 0.5, mask))
    assert np.mean(soft_dice) > 0.985  # measured 0.989 on these 64x96 masks (21x32 grid)
    assert np.mean(nearest_dice) < np.mean(soft_dice) - 0.05  # measured 0.921


def test_unet_training_tiles_pair_the_tiles_centre_with_its_mask(tiny_dataset) -> None:
    # at input 40x60 a 204x220 tile gives a 20x36 output; its centre can start at any row 0..20
    # and column 0..24 of the image, never in the mirrored border. Whatever the crop, the target
    # must be the mask under the tile's centre.
    paths = DatasetPaths(tiny_dataset.data_dir)
    name = sorted(p.name for p in paths.train_dir.iterdir())[5]
    spec = ModelSpec.from_entry(
        "m", {"arch": "unet", "input_size": [40, 60], "tile_size": [204, 220], "augment": NO_AUGMENT}
    )
    dataset = SegmentationDataset(paths, [name], spec, train=True)
    image, mask = dataset.read(0)
    assert mask.any() and not mask.all()
    places = set()
    for _ in range(8):
        inputs, target = dataset[0]
        assert inputs.shape == (3, 204, 220) and target.shape == (1, 20, 36)
        centre = inputs[:, 92:-92, 92:-92].numpy().transpose(1, 2, 0) * STD + MEAN  # back to pixels
        errors = {
            (top, left): np.abs(image[top : top + 20, left : left + 36] - centre).mean()
            for top in range(0, 40 - 20 + 1)
            for left in range(0, 60 - 36 + 1)
        }
        top, left = min(errors, key=errors.__getitem__)
        assert errors[(top, left)] < 0.01  # the centre is this window of the image, exactly
        assert (target[0].numpy() == mask[top : top + 20, left : left + 36]).all()
        places.add((top, left))
    assert len(places) > 1  # the crops are random


def test_channel_shuffle_reorders_the_colours_and_grayscale_equalises_them() -> None:
    # a pixel of three distinct channel values: shuffled, it keeps the same three in another
    # order at least once in 20 draws; grayed, its channels are equal (ITU-R 601-2 luma: 0.299 R
    # + 0.587 G + 0.114 B of 10, 20, 30 is 18.15, so 18)
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    image[...] = (10, 20, 30)
    mask = np.zeros((4, 6), dtype=np.float32)
    shuffled = augmentations(AugmentSpec(**{**NO_AUGMENT, "channel_shuffle_p": 1.0}), seed=3)
    orders = {tuple(shuffled(image=image, mask=mask)["image"][0, 0]) for _ in range(20)}
    assert all(sorted(order) == [10, 20, 30] for order in orders) and len(orders) > 1
    grayed = augmentations(AugmentSpec(**{**NO_AUGMENT, "gray_p": 1.0}), seed=3)
    assert grayed(image=image, mask=mask)["image"][0, 0].tolist() == [18, 18, 18]
    # off by default: the colours come through
    plain = augmentations(AugmentSpec(**NO_AUGMENT), seed=3)
    assert plain(image=image, mask=mask)["image"][0, 0].tolist() == [10, 20, 30]
