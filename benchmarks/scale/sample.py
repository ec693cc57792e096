"""The generated sample that make scale runs each stage's command on: a dataset at the
competition's image size, the sample doubled, OOF maps, submission and label shards, and the
competition's tables of 318 cars for making folds."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from carvana import rle
from carvana.competition import COMPETITION_SIZE
from carvana.data.images import read_mask
from carvana.data.synthetic import SyntheticSpec, generate
from carvana.layout import VIEWS_PER_CAR, DatasetPaths, car_of, image_name

SHARDS = 16  # the sample's prediction and label shards


@dataclass(frozen=True)
class Sample:
    """A generated dataset at the competition's size in ``root``/data, with what the stages after
    it read: OOF maps, prediction shards, label shards (made by the functions below)."""

    root: Path
    size: tuple[int, int] = COMPETITION_SIZE  # (height, width) of its images

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def paths(self) -> DatasetPaths:
        return DatasetPaths(self.data)

    def train_names(self) -> list[str]:
        return pd.read_csv(self.paths.train_masks_csv_path)["img"].tolist()

    def test_names(self) -> list[str]:
        return pd.read_csv(self.paths.sample_submission_path)["img"].tolist()

    def images(self) -> int:
        return len(self.train_names()) + len(self.test_names())

    def files(self) -> int:
        """Images and masks: what the import extracts."""
        return 2 * len(self.train_names()) + len(self.test_names())

    def rows(self) -> int:
        """The submission rows that ``submission_rows`` wrote for this sample."""
        return len(pd.read_csv(self.root / "rows" / "images.csv"))

    @classmethod
    def generated(cls, root: Path, cars: int, size: tuple[int, int] = COMPETITION_SIZE) -> Sample:
        spec = SyntheticSpec(cars, max(1, cars // 2), size, seed=5, workers=os.cpu_count() or 1)
        generate(spec, root / "data", root / "truth.csv")
        return cls(root, size)

    def doubled(self, root: Path) -> Sample:
        """This sample with every car twice, the copy under the id of its hex digits inverted
        (files linked, not copied)."""
        other = Sample(root, self.size)
        for folder in ("train", "train_masks", "test"):
            (other.data / folder).mkdir(parents=True)
            for path in sorted((self.data / folder).iterdir()):
                os.link(path, other.data / folder / path.name)
                os.link(path, other.data / folder / _twin_name(path.name))
        os.link(self.root / "truth.csv", other.root / "truth.csv")  # the test masks' RLE, for rows
        for name in ("train_masks.csv", "sample_submission.csv", "metadata.csv"):
            table = pd.read_csv(self.data / name, dtype=str, keep_default_na=False)
            column = "id" if name == "metadata.csv" else "img"
            twin = table.assign(**{column: [_twin_name(value) for value in table[column]]})
            pd.concat([table, twin]).to_csv(other.data / name, index=False)
        return other

    def zipped(self) -> Path:
        """The dataset as the competition's archives, in a folder of its own."""
        folder = self.root / "archives"
        if not folder.is_dir():
            folder.mkdir()
            for name in (
                "train",
                "train_masks",
                "test",
                "train_masks.csv",
                "metadata.csv",
                "sample_submission.csv",
            ):
                with zipfile.ZipFile(
                    folder / f"{name}.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1
                ) as archive:
                    source = self.data / name
                    for path in sorted(source.rglob("*")) if source.is_dir() else [source]:
                        archive.write(path, str(path.relative_to(self.data)))
        return folder


def _twin(car_id: str) -> str:
    return format(int(car_id, 16) ^ (16**12 - 1), "012x")


def _twin_name(name: str) -> str:
    return name.replace(name[:12], _twin(name[:12]), 1)


def make_maps(sample: Sample, models: list[str]) -> None:
    """Three networks' OOF maps of every training image, with TTA and without, as trained
    networks make them: sure inside and outside the car, unsure over a few pixels at its
    outline, each network's outline shifted a little; two folds by car."""
    names = sample.train_names()
    cars = sorted({car_of(name) for name in names})
    folds = pd.DataFrame({"img": names, "car_id": [car_of(n) for n in names]})
    folds["fold"] = [cars.index(car) % 2 for car in folds["car_id"]]
    folds.to_csv(sample.root / "folds.csv", index=False)
    for name, fold in zip(folds["img"], folds["fold"], strict=True):
        mask = read_mask(sample.paths.mask_path(name))
        inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
        outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)
        distance = inside - outside
        for index, model in enumerate(models):
            for folder, shift in (("oof", 0.0), ("oof_plain", 0.4)):
                logit = (distance + 0.6 * (index - 1) + shift) / 1.5
                probability = np.round(255 / (1 + np.exp(-np.clip(logit, -30, 30)))).astype(np.uint8)
                path = sample.root / "models" / model / f"fold{fold}" / folder / name.replace(".jpg", ".png")
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), probability)
    for model in models:
        for fold in (0, 1):
            metrics = pd.DataFrame({"epoch": range(40), "train_loss": 0.1, "val_loss": 0.1, "val_dice": 0.99})
            metrics.to_csv(sample.root / "models" / model / f"fold{fold}" / "metrics.csv", index=False)


def submission_rows(sample: Sample, rows: int) -> None:
    """``rows`` test images' rows (the sample's test masks' RLE, again and again) in SHARDS
    prediction shards and label shards, with a dataset folder that lists them."""
    truth = pd.read_csv(sample.root / "truth.csv", dtype=str, keep_default_na=False)["rle_mask"].tolist()
    names = [
        image_name(f"{car:012x}", view) for car in range(rows // VIEWS_PER_CAR + 1) for view in range(1, 17)
    ]
    table = pd.DataFrame({"img": names[:rows], "rle_mask": [truth[i % len(truth)] for i in range(rows)]})
    data = sample.root / "rows" / "data"
    (data / "test").mkdir(parents=True)
    os.link(sample.paths.image_path("test", sample.test_names()[0]), data / "test" / table["img"].iloc[0])
    table[["img"]].assign(rle_mask="1 1").to_csv(data / "sample_submission.csv", index=False)
    table[["img"]].to_csv(sample.root / "rows" / "images.csv", index=False)
    bounds = np.linspace(0, rows, SHARDS + 1).round().astype(int)
    for index in range(SHARDS):
        part = table.iloc[bounds[index] : bounds[index + 1]]
        part.to_csv(sample.root / "rows" / f"shard_{index + 1}.csv", index=False)
        folder = sample.root / "rows" / "labels" / f"shard_{index + 1}-of-{SHARDS}"
        folder.mkdir(parents=True)
        areas = [rle.area(encoded) for encoded in part["rle_mask"]]
        pd.DataFrame({"img": part["img"], "area": areas, "uncertain": 0.01}).to_csv(
            folder / "labels.csv", index=False
        )


def competition_tables(folder: Path) -> Path:
    """train_masks.csv and metadata.csv of the competition's 318 cars (one mask's RLE for all)."""
    data = folder / "data"
    data.mkdir(parents=True)
    mask = np.zeros(COMPETITION_SIZE, dtype=np.uint8)
    mask[300:1000, 200:1700] = 1
    cars = [f"{car:012x}" for car in range(318)]
    names = [image_name(car, view) for car in cars for view in range(1, VIEWS_PER_CAR + 1)]
    pd.DataFrame({"img": names, "rle_mask": rle.encode(mask)}).to_csv(data / "train_masks.csv", index=False)
    pd.DataFrame({"id": cars, "year": "2017", "make": "Make", "model": "M", "trim1": "", "trim2": ""}).to_csv(
        data / "metadata.csv", index=False
    )
    return data
