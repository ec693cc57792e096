"""A pseudo-labelling round's training job: test images with their labels beside the fold's own,
a fresh draw of them each epoch, and the round before's weights to start from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from carvana.data.images import read_mask
from carvana.layout import DatasetPaths
from carvana.models.inference import resize
from carvana.models.spec import ModelSpec
from carvana.prediction.pseudo import write_label
from carvana.pseudo import LABELS_TABLE, RoundTraining
from carvana.training.data import MixSampler, PseudoLabels, SegmentationDataset
from carvana.training.job import TrainPaths, train

SPEC = ModelSpec.from_entry(
    "tiny",
    {
        **{"arch": "unet1024", "width": 0.125, "input_size": [64, 64], "epochs": 1, "batch_size": 4},
        **{"optimizer": {"name": "adam", "lr": 1e-12}, "gpu": 0, "precision": "32-true"},
    },
)


def _left_half(shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[:, : shape[1] // 2] = True
    return mask


@pytest.fixture(scope="module")
def labels_dir(tiny_dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fold's labels folder by hand, as the workflow leaves it: one shard's folder of masks and
    the fold's table naming each mask's file. Every test image is labelled with its left half (48
    of 96 columns), but the last, whose label is empty."""
    folder = tmp_path_factory.mktemp("labels")
    (folder / "shard_1-of-1").mkdir()
    images = pd.read_csv(DatasetPaths(tiny_dataset.data_dir).sample_submission_path)["img"].tolist()
    rows = []
    for number, img in enumerate(images):
        mask = _left_half((64, 96)) if number < len(images) - 1 else np.zeros((64, 96), bool)
        mask_file = f"shard_1-of-1/{img.replace('.jpg', '.png')}"
        write_label(folder / mask_file, mask)
        rows.append((img, int(mask.sum()), number / 100, mask_file))
    pd.DataFrame(rows, columns=["img", "area", "uncertain", "mask"]).to_csv(
        folder / LABELS_TABLE, index=False
    )
    return folder


def test_a_pseudo_item_is_the_test_image_with_its_label(tiny_dataset, labels_dir: Path) -> None:
    paths = DatasetPaths(tiny_dataset.data_dir)
    train_img = pd.read_csv(paths.train_masks_csv_path)["img"].iloc[0]
    test_img = pd.read_csv(paths.sample_submission_path)["img"].iloc[3]
    mask_path = labels_dir / "shard_1-of-1" / test_img.replace(".jpg", ".png")
    items = SegmentationDataset(
        paths, [train_img], SPEC, train=False, pseudo=PseudoLabels([test_img], [mask_path])
    )
    assert len(items) == 2
    assert items.sources(1) == (paths.image_path("test", test_img), mask_path)
    _, target = items[1]
    # the left half (48 of 96 columns) at the input size, 64x64: the first 32 columns
    assert target.shape == (1, 64, 64)
    assert target[0, :, :32].min() == 1.0 and target[0, :, 32:].max() == 0.0
    _, real = items[0]
    expected = resize(read_mask(paths.mask_path(train_img)).astype(np.float32), (64, 64))
    assert np.array_equal(real[0].numpy(), expected)


def test_each_epoch_takes_every_real_image_once_and_a_fresh_draw_of_pseudo_ones() -> None:
    sampler = MixSampler(real=5, pseudo=10, per_epoch=3, seed=1)
    epochs = [list(sampler) for _ in range(6)]
    drawn = set()
    for epoch in epochs:
        assert len(epoch) == len(sampler) == 8
        assert sorted(i for i in epoch if i < 5) == [0, 1, 2, 3, 4]
        pseudo = [i for i in epoch if i >= 5]
        assert len(set(pseudo)) == 3 and max(pseudo) <= 14
        drawn.update(pseudo)
    assert len(drawn) > 6  # six epochs of three go through most of the ten labels
    again = MixSampler(real=5, pseudo=10, per_epoch=3, seed=1)
    assert [list(again) for _ in range(6)] == epochs  # the seed fixes every epoch's draw
    assert len(MixSampler(real=5, pseudo=2, per_epoch=3, seed=1)) == 7  # no more than there are
    resumed = MixSampler(real=5, pseudo=10, per_epoch=3, seed=1)
    resumed.set_epoch(4)  # as Lightning does for a job resumed at its fifth epoch
    assert [list(resumed), list(resumed)] == epochs[4:]


def _conv_weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {key: value for key, value in state.items() if key.endswith("weight") and value.ndim == 4}


@pytest.mark.slow  # trains a network
def test_a_round_starts_from_the_weights_it_is_given(
    tiny_dataset, folds_path: Path, labels_dir: Path, tmp_path: Path
) -> None:
    """At a learning rate of 1e-12 a network ends where it starts. Round 0 is trained with
    another seed than round 1's spec, so only the weights given can bring round 1 to its
    convolutions: from scratch it ends on its own seed's."""
    other_seed = ModelSpec.from_json(SPEC.to_json().replace('"seed": 2017', '"seed": 5'))
    zero = TrainPaths(tiny_dataset.data_dir, folds_path, tmp_path / "round0")
    train(other_seed, 0, zero)
    round_one = TrainPaths(tiny_dataset.data_dir, folds_path, tmp_path / "round1")
    train(SPEC, 0, round_one, pseudo=RoundTraining(labels_dir, share=0.5, init_weights=zero.weights_path))
    scratch = TrainPaths(tiny_dataset.data_dir, folds_path, tmp_path / "scratch")
    train(SPEC, 0, scratch, pseudo=RoundTraining(labels_dir, share=0.5))
    start, end = _conv_weights(zero.weights_path), _conv_weights(round_one.weights_path)
    fresh = _conv_weights(scratch.weights_path)
    assert all(torch.allclose(start[key], end[key], atol=1e-6) for key in start)
    assert not any(torch.allclose(start[key], fresh[key], atol=1e-3) for key in start)


@pytest.mark.slow  # trains a network
def test_weights_of_another_network_are_refused_with_what_to_do(
    tiny_dataset, folds_path: Path, labels_dir: Path, tmp_path: Path
) -> None:
    zero = TrainPaths(tiny_dataset.data_dir, folds_path, tmp_path / "round0")
    train(SPEC, 0, zero)
    wider = ModelSpec.from_json(SPEC.to_json().replace('"width": 0.125', '"width": 0.25'))
    with pytest.raises(ValueError, match=r"set pseudo\.start to scratch"):
        train(
            wider,
            0,
            TrainPaths(tiny_dataset.data_dir, folds_path, tmp_path / "r1"),
            pseudo=RoundTraining(labels_dir, init_weights=zero.weights_path),
        )
