"""K-fold split of the training images by car, stratified by the car's mask area or make, and
the split of one fold (``fold_images``) that its training and OOF jobs read.

A split by image would put 15 sibling views of every validation car in training and inflate the
out-of-fold score; the winners split by car, and so does this. The split is made on the table of
cars (a group k-fold with the car as group): cars are sorted by the stratification key, cut into
consecutive blocks of ``n_folds`` cars, and each block deals one car to each fold in a random order.
Every fold so gets cars from the whole range of the key, and fold sizes differ by at most one car.
scikit-learn's StratifiedGroupKFold needs discrete classes with at least ``n_folds`` members each;
a continuous key (mask area) and a few dozen cars fit neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from carvana import rle, schema
from carvana.atomic import atomic_path
from carvana.layout import DatasetPaths, car_of

STRATIFY_CHOICES = ("mask_area", "make", "none")


@dataclass(frozen=True)
class FoldSpec:
    n_folds: int = schema.default("folds.n_folds")
    seed: int = schema.default("folds.seed")
    stratify: str = schema.default("folds.stratify")

    def __post_init__(self) -> None:
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {self.n_folds}")
        if self.stratify not in STRATIFY_CHOICES:
            raise ValueError(f"stratify must be one of {', '.join(STRATIFY_CHOICES)}; got {self.stratify!r}")


def assign_folds(
    car_ids: Sequence[str], keys: Sequence[float] | Sequence[str] | None, n_folds: int, seed: int
) -> dict[str, int]:
    """Map every car to a fold in 0..n_folds-1, stratified by ``keys`` (one per car, or None).

    Deterministic for a seed; independent of the order of ``car_ids``.
    """
    cars = list(car_ids)
    if len(set(cars)) != len(cars):
        raise ValueError("car_ids must be unique")
    if not 2 <= n_folds <= len(cars):
        raise ValueError(f"n_folds must be between 2 and the number of cars ({len(cars)}), got {n_folds}")
    rng = np.random.default_rng(seed)
    order = sorted(range(len(cars)), key=lambda i: cars[i])  # a canonical order first
    shuffle = rng.permutation(len(cars))
    tiebreak = {index: shuffle[rank] for rank, index in enumerate(order)}  # by rank, not input position
    if keys is not None:
        if len(keys) != len(cars):
            raise ValueError(f"{len(keys)} keys for {len(cars)} cars")
        order = sorted(order, key=lambda i: (keys[i], tiebreak[i]))
    else:
        order = sorted(order, key=lambda i: tiebreak[i])
    folds: dict[str, int] = {}
    for start in range(0, len(order), n_folds):
        block = order[start : start + n_folds]
        dealt = rng.permutation(n_folds)[: len(block)]
        for index, fold in zip(block, dealt, strict=True):
            folds[cars[index]] = int(fold)
    return folds


def make_folds(paths: DatasetPaths, spec: FoldSpec, folds_path: Path) -> pd.DataFrame:
    """Write ``folds_path`` (columns img, car_id, fold; one row per train image) and return it."""
    masks = pd.read_csv(paths.train_masks_csv_path, dtype=str, keep_default_na=False)
    masks["car_id"] = masks["img"].map(car_of)
    masks["area"] = masks["rle_mask"].map(rle.area)
    cars = masks.groupby("car_id")["area"].mean()
    if spec.n_folds > len(cars):
        raise ValueError(
            f"n_folds = {spec.n_folds} is more than the {len(cars)} cars in {paths.train_masks_csv_path}; "
            f"choose 2..{len(cars)}"
        )
    keys: list[float] | list[str] | None
    if spec.stratify == "mask_area":
        keys = cars.tolist()
    elif spec.stratify == "make":
        metadata = pd.read_csv(paths.metadata_path, dtype=str, keep_default_na=False).set_index("id")
        keys = [str(metadata["make"].get(car, "")) for car in cars.index]
    else:
        keys = None
    folds = assign_folds(list(cars.index), keys, spec.n_folds, spec.seed)
    table = pd.DataFrame({"img": masks["img"], "car_id": masks["car_id"]})
    table["fold"] = table["car_id"].map(folds).astype(int)
    table = table.sort_values("img").reset_index(drop=True)
    with atomic_path(folds_path) as temporary:
        table.to_csv(temporary, index=False)
    return table


@dataclass(frozen=True)
class FoldImages:
    """Image names (``<carid>_<NN>.jpg``) to train on and to hold out for fold ``fold``."""

    fold: int
    train: list[str]
    held_out: list[str]


def fold_images(folds_path: Path, fold: int) -> FoldImages:
    """Split folds.csv (img, car_id, fold) into the images of ``fold`` and all the others."""
    table = pd.read_csv(folds_path)
    folds = sorted(int(f) for f in table["fold"].unique())
    if fold not in folds:
        raise ValueError(f"fold {fold} is not in {folds_path}; its folds are {folds}")
    held_out = table["fold"] == fold
    return FoldImages(fold, sorted(table.loc[~held_out, "img"]), sorted(table.loc[held_out, "img"]))
