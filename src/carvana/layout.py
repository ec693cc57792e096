"""The competition's file layout, name for name, and the parsing of its file names.

A dataset folder holds what the competition's archives unpack to::

    train/<carid>_<NN>.jpg              NN = 01..16, carid = 12 lowercase hex characters
    train_masks/<carid>_<NN>_mask.gif   palette GIF, values 0/1
    test/<carid>_<NN>.jpg
    train_masks.csv                     img,rle_mask (row-major, 1-indexed RLE)
    metadata.csv                        id,year,make,model,trim1,trim2
    sample_submission.csv               img,rle_mask, one row per test image
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from carvana.competition import COMPETITION_SIZE

VIEWS_PER_CAR = 16
RLE_HEADER = ("img", "rle_mask")
METADATA_COLUMNS = ("id", "year", "make", "model", "trim1", "trim2")

_IMAGE_RE = re.compile(r"^(?P<car>[0-9a-f]{12})_(?P<view>\d{2})\.jpg$")
_MASK_RE = re.compile(r"^(?P<car>[0-9a-f]{12})_(?P<view>\d{2})_mask\.gif$")


def scaled_size(scale: float) -> tuple[int, int]:
    """(height, width) of the competition's 1918x1280 images scaled by ``scale`` in (0, 1]."""
    if not 0 < scale <= 1:
        raise ValueError(f"image_scale must be in (0, 1], got {scale}")
    height, width = COMPETITION_SIZE
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass(frozen=True)
class DatasetPaths:
    """Paths of one dataset folder in the competition's layout."""

    data_dir: Path

    @property
    def train_dir(self) -> Path:
        return self.data_dir / "train"

    @property
    def train_masks_dir(self) -> Path:
        return self.data_dir / "train_masks"

    @property
    def test_dir(self) -> Path:
        return self.data_dir / "test"

    @property
    def train_masks_csv_path(self) -> Path:
        return self.data_dir / "train_masks.csv"

    @property
    def metadata_path(self) -> Path:
        return self.data_dir / "metadata.csv"

    @property
    def sample_submission_path(self) -> Path:
        return self.data_dir / "sample_submission.csv"

    def image_path(self, split: str, img: str) -> Path:
        """Path of image ``img`` (``<carid>_<NN>.jpg``) of split ``train`` or ``test``."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return self.data_dir / split / img

    def mask_path(self, img: str) -> Path:
        return self.train_masks_dir / mask_name(img)


def image_name(car_id: str, view: int) -> str:
    """``<carid>_<NN>.jpg`` for a car id and a view number 1..16."""
    if not 1 <= view <= VIEWS_PER_CAR:
        raise ValueError(f"view must be in 1..{VIEWS_PER_CAR}, got {view}")
    return f"{car_id}_{view:02d}.jpg"


def mask_name(img: str) -> str:
    """``<carid>_<NN>_mask.gif`` for the image named ``<carid>_<NN>.jpg``."""
    car_id, view = parse_image_name(img)
    return f"{car_id}_{view:02d}_mask.gif"


def parse_image_name(name: str) -> tuple[str, int]:
    """(car id, view) of ``<carid>_<NN>.jpg``; ValueError for any other name."""
    match = _IMAGE_RE.fullmatch(name)
    if match is None or not 1 <= int(match["view"]) <= VIEWS_PER_CAR:
        raise ValueError(
            f"{name!r} is not an image name of the form <carid>_<NN>.jpg "
            f"(carid: 12 lowercase hex characters, NN: 01..{VIEWS_PER_CAR})"
        )
    return match["car"], int(match["view"])


def parse_mask_name(name: str) -> tuple[str, int]:
    """(car id, view) of ``<carid>_<NN>_mask.gif``; ValueError for any other name."""
    match = _MASK_RE.fullmatch(name)
    if match is None or not 1 <= int(match["view"]) <= VIEWS_PER_CAR:
        raise ValueError(
            f"{name!r} is not a mask name of the form <carid>_<NN>_mask.gif "
            f"(carid: 12 lowercase hex characters, NN: 01..{VIEWS_PER_CAR})"
        )
    return match["car"], int(match["view"])


def car_of(img: str) -> str:
    """The car id of an image name."""
    return parse_image_name(img)[0]
