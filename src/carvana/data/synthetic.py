"""The offline default dataset: generated cars in the competition's exact layout.

Each car is drawn (``carvana.data.synthetic_car``: its shape, paint and studio) and photographed
in the competition's 16 views (``carvana.data.synthetic_render``); this module writes the views as
JPEGs at a random quality, the training masks as GIFs and in train_masks.csv, the sample
submission and the metadata, as the competition's files are laid out. The true test masks go to a
CSV outside the competition layout, read only by the scoring step. Everything is deterministic for
a seed; a car's pictures do not depend on how many cars are made.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from carvana import rle, schema
from carvana.atomic import atomic_path
from carvana.data.images import write_jpeg, write_mask
from carvana.data.synthetic_car import CarModel, random_car
from carvana.data.synthetic_render import render_view
from carvana.layout import (
    METADATA_COLUMNS,
    RLE_HEADER,
    VIEWS_PER_CAR,
    DatasetPaths,
    image_name,
    mask_name,
    scaled_size,
)


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. ``image_size`` is (height, width); by default the schema's
    ``synthetic.image_scale`` of the competition's size. ``workers``: processes that draw the cars."""

    train_cars: int = schema.default("synthetic.train_cars")
    test_cars: int = schema.default("synthetic.test_cars")
    image_size: tuple[int, int] = scaled_size(schema.default("synthetic.image_scale"))
    seed: int = schema.default("synthetic.seed")
    jpeg_quality: tuple[int, int] = tuple(schema.default("synthetic.jpeg_quality"))
    workers: int = 1

    def __post_init__(self) -> None:
        if self.train_cars < 2:
            raise ValueError(f"train_cars must be at least 2 (folds split cars), got {self.train_cars}")
        if self.test_cars < 1:
            raise ValueError(f"test_cars must be at least 1, got {self.test_cars}")
        height, width = self.image_size
        if height < 32 or width < 48:
            raise ValueError(f"image_size must be at least (32, 48) (height, width), got {self.image_size}")
        low, high = self.jpeg_quality
        if not 1 <= low <= high <= 100:
            raise ValueError(
                f"jpeg_quality must be (low, high) with 1 <= low <= high <= 100, got {self.jpeg_quality}"
            )
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")


def _car_ids(rng: np.random.Generator, count: int) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < count:
        car_id = "".join(f"{b:02x}" for b in rng.integers(0, 256, 6).tolist())
        if car_id not in seen:
            seen.add(car_id)
            ids.append(car_id)
    return ids


_RenderJob = tuple[CarModel, int, tuple[int, int], tuple[int, int], Path, Path | None]


def _render_car(args: _RenderJob) -> list[tuple[str, str]]:
    """Render and write the 16 views of one car; return (img, rle) rows."""
    car, seed, image_size, quality, image_dir, mask_dir = args
    rng = np.random.default_rng(np.random.SeedSequence([seed, int(car.car_id, 16)]))
    rows = []
    for view in range(1, VIEWS_PER_CAR + 1):
        image, mask = render_view(car, view, image_size, rng)
        name = image_name(car.car_id, view)
        write_jpeg(image_dir / name, image, int(rng.integers(quality[0], quality[1] + 1)))
        if mask_dir is not None:
            write_mask(mask_dir / mask_name(name), mask)
        rows.append((name, rle.encode(mask)))
    return rows


def generate(spec: SyntheticSpec, data_dir: Path, truth_path: Path) -> None:
    """Write a dataset in the competition's layout to ``data_dir`` and the test truth to ``truth_path``.

    Each folder and file appears whole or not at all (written under a temporary name first).
    """
    paths = DatasetPaths(Path(data_dir))
    id_rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0]))
    ids = _car_ids(id_rng, spec.train_cars + spec.test_cars)
    cars = [
        random_car(np.random.default_rng(np.random.SeedSequence([spec.seed, 1, int(car_id, 16)])), car_id)
        for car_id in ids
    ]
    train_cars, test_cars = cars[: spec.train_cars], cars[spec.train_cars :]

    paths.data_dir.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(paths.train_dir) as train_dir,
        atomic_path(paths.train_masks_dir) as masks_dir,
        atomic_path(paths.test_dir) as test_dir,
    ):
        for folder in (train_dir, masks_dir, test_dir):
            folder.mkdir()
        jobs: list[_RenderJob] = [
            (car, spec.seed, spec.image_size, spec.jpeg_quality, train_dir, masks_dir) for car in train_cars
        ]
        jobs += [(car, spec.seed, spec.image_size, spec.jpeg_quality, test_dir, None) for car in test_cars]
        results = _map(_render_car, jobs, spec.workers)
    train_rows = [row for rows in results[: len(train_cars)] for row in rows]
    test_rows = [row for rows in results[len(train_cars) :] for row in rows]

    _write_csv(paths.train_masks_csv_path, pd.DataFrame(train_rows, columns=list(RLE_HEADER)))
    sample = pd.DataFrame({"img": [img for img, _ in test_rows], "rle_mask": "1 1"})
    _write_csv(paths.sample_submission_path, sample)
    _write_csv(truth_path, pd.DataFrame(test_rows, columns=list(RLE_HEADER)))
    metadata = pd.DataFrame(
        [(car.car_id, car.year, car.make, car.model, car.trim1, car.trim2) for car in cars],
        columns=list(METADATA_COLUMNS),
    )
    _write_csv(paths.metadata_path, metadata)


def _map(function, jobs: Iterable, workers: int) -> list:  # type: ignore[no-untyped-def,type-arg]
    jobs = list(jobs)
    if workers == 1:
        return [function(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, jobs))


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)
