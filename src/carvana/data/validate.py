"""Checks that a dataset folder is a whole, consistent competition dataset before any training.

Every problem names the file and what is wrong with it; all problems are collected (up to a limit)
so that one run lists everything to fix. Train images and masks are decoded in full; test images
are checked from their header and JPEG end marker unless ``decode_test`` asks for a full decode
(100,064 full-size decodes take minutes).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from carvana import rle, schema
from carvana.atomic import write_text
from carvana.data.images import image_size, read_image, read_mask
from carvana.layout import (
    METADATA_COLUMNS,
    RLE_HEADER,
    VIEWS_PER_CAR,
    DatasetPaths,
    mask_name,
    parse_image_name,
    parse_mask_name,
)

_JPEG_END = b"\xff\xd9"


class DataValidationError(ValueError):
    """The dataset has problems; the message lists them, one per line."""


@dataclass(frozen=True)
class ValidationSpec:
    """What the dataset must look like.

    ``image_size`` is (height, width); None reads it off the first train image, and every image
    must then share it.
    """

    image_size: tuple[int, int] | None = None
    train_images: int | None = None  # exact counts, for the real competition
    test_images: int | None = None
    decode_test: bool = schema.default("validate_data.decode_test")
    workers: int = 1
    max_problems: int = 100


@dataclass
class _Findings:
    problems: list[str] = field(default_factory=list)

    def add(self, path: Path | str, problem: str) -> None:
        self.problems.append(f"{path}: {problem}")


def validate(paths: DatasetPaths, spec: ValidationSpec) -> dict[str, Any]:
    """Check the dataset; return a report (counts, size, mask coverage) or raise DataValidationError."""
    findings = _Findings()
    required = [paths.train_dir, paths.train_masks_dir, paths.test_dir]
    files = [paths.train_masks_csv_path, paths.metadata_path, paths.sample_submission_path]
    for folder in required:
        if not folder.is_dir():
            findings.add(folder, "missing folder")
    for file in files:
        if not file.is_file():
            findings.add(file, "missing file")
    if findings.problems:
        raise DataValidationError(_summary(paths, findings.problems, spec.max_problems))

    train = _list_images(paths.train_dir, findings)
    test = _list_images(paths.test_dir, findings)
    for folder, found in ((paths.train_dir, train), (paths.test_dir, test)):
        if not found:
            findings.add(folder, "no images")
    masks = _list_masks(paths.train_masks_dir, findings)
    for img in sorted(set(train) - set(masks)):
        findings.add(paths.train_dir / img, f"image without a mask (expected {paths.mask_path(img)})")
    for img in sorted(set(masks) - set(train)):
        findings.add(paths.mask_path(img), f"mask without an image (expected {paths.train_dir / img})")
    _check_views(train, paths.train_dir, findings)
    _check_views(test, paths.test_dir, findings)
    for car in sorted({c for c, _ in train.values()} & {c for c, _ in test.values()}):
        findings.add(paths.test_dir, f"car {car} is in both train and test")
    for label, found, expected in (("train", train, spec.train_images), ("test", test, spec.test_images)):
        if expected is not None and len(found) != expected:
            findings.add(paths.data_dir / label, f"{len(found)} images, the competition has {expected}")

    encodings = _read_rle_csv(paths.train_masks_csv_path, findings)
    for img in sorted(set(train) - set(encodings)):
        findings.add(paths.train_masks_csv_path, f"no row for {img}")
    for img in sorted(set(encodings) - set(train)):
        findings.add(paths.train_masks_csv_path, f"row {img} has no image in {paths.train_dir}")
    sample = _read_rle_csv(paths.sample_submission_path, findings)
    for img in sorted(set(test) - set(sample)):
        findings.add(paths.sample_submission_path, f"no row for test image {img}")
    for img in sorted(set(sample) - set(test)):
        findings.add(paths.sample_submission_path, f"row {img} has no image in {paths.test_dir}")
    _check_metadata(paths.metadata_path, {c for c, _ in train.values()}, findings)

    paired = sorted(set(train) & set(masks))
    size = spec.image_size or _reference_size(paths.train_dir, sorted(train))
    if size is None:
        raise DataValidationError(_summary(paths, findings.problems, spec.max_problems))
    coverages = _run(
        lambda img: _check_train_pair(paths, img, encodings.get(img), size, findings),
        paired,
        spec.workers,
    )
    _run(
        lambda img: _check_test_image(paths.test_dir / img, size, spec.decode_test, findings),
        sorted(test),
        spec.workers,
    )

    if findings.problems:
        raise DataValidationError(_summary(paths, findings.problems, spec.max_problems))
    areas = np.array([c for c in coverages if c is not None], dtype=np.float64)
    return {
        "data_dir": str(paths.data_dir),
        "image_size": {"height": size[0], "width": size[1]},
        "train_images": len(train),
        "train_cars": len({c for c, _ in train.values()}),
        "test_images": len(test),
        "test_cars": len({c for c, _ in test.values()}),
        "test_images_decoded": spec.decode_test,
        "mask_coverage": {
            "mean": round(float(areas.mean()), 5) if areas.size else None,
            "min": round(float(areas.min()), 5) if areas.size else None,
            "max": round(float(areas.max()), 5) if areas.size else None,
        },
        "problems": [],
    }


def write_report(report: dict[str, Any], report_path: Path) -> None:
    write_text(report_path, json.dumps(report, indent=2) + "\n")


def _reference_size(folder: Path, images: list[str]) -> tuple[int, int] | None:
    """(height, width) of the first train image whose header reads; its problems are found later."""
    for img in images:
        try:
            return image_size(folder / img)
        except (OSError, ValueError):
            continue
    return None


def _summary(paths: DatasetPaths, problems: list[str], limit: int) -> str:
    shown = sorted(problems)[:limit]
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} problem(s) in the dataset at {paths.data_dir}:\n" + "\n".join(shown) + more


def _visible(folder: Path) -> list[Path]:
    """Entries of a folder, hidden ones (.DS_Store, Snakemake's timestamps) left out."""
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def _list_images(folder: Path, findings: _Findings) -> dict[str, tuple[str, int]]:
    images: dict[str, tuple[str, int]] = {}
    for entry in _visible(folder):
        try:
            images[entry.name] = parse_image_name(entry.name)
        except ValueError as error:
            findings.add(entry, f"not a competition image: {error}")
    return images


def _list_masks(folder: Path, findings: _Findings) -> dict[str, tuple[str, int]]:
    masks: dict[str, tuple[str, int]] = {}
    for entry in _visible(folder):
        try:
            car, view = parse_mask_name(entry.name)
        except ValueError as error:
            findings.add(entry, f"not a competition mask: {error}")
            continue
        masks[f"{car}_{view:02d}.jpg"] = (car, view)
    return masks


def _check_views(images: dict[str, tuple[str, int]], folder: Path, findings: _Findings) -> None:
    views: defaultdict[str, set[int]] = defaultdict(set)
    for car, view in images.values():
        views[car].add(view)
    for car, seen in sorted(views.items()):
        if len(seen) != VIEWS_PER_CAR:
            lacking = sorted(set(range(1, VIEWS_PER_CAR + 1)) - seen)
            findings.add(
                folder,
                f"car {car} has {len(seen)} of {VIEWS_PER_CAR} views (missing "
                + ", ".join(f"{car}_{v:02d}.jpg" for v in lacking)
                + ")",
            )


def _read_rle_csv(path: Path, findings: _Findings) -> dict[str, str]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as error:
        findings.add(path, f"not a readable CSV ({error})")
        return {}
    if tuple(frame.columns) != RLE_HEADER:
        findings.add(
            path, f"header must be {','.join(RLE_HEADER)}, found {','.join(map(str, frame.columns))}"
        )
        return {}
    for img, count in Counter(frame["img"]).items():
        if count > 1:
            findings.add(path, f"duplicate id {img} ({count} rows)")
    return dict(zip(frame["img"], frame["rle_mask"], strict=True))


def _check_metadata(path: Path, train_cars: set[str], findings: _Findings) -> None:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as error:
        findings.add(path, f"not a readable CSV ({error})")
        return
    lacking_columns = [c for c in METADATA_COLUMNS if c not in frame.columns]
    if lacking_columns:
        findings.add(path, f"missing column(s) {', '.join(lacking_columns)}")
        return
    for car, count in Counter(frame["id"]).items():
        if count > 1:
            findings.add(path, f"duplicate id {car} ({count} rows)")
    for car in sorted(train_cars - set(frame["id"])):
        findings.add(path, f"no row for train car {car}")


def _check_train_pair(
    paths: DatasetPaths,
    img: str,
    encoding: str | None,
    expected_size: tuple[int, int],
    findings: _Findings,
) -> float | None:
    """Decode one train image and its mask; return the mask's coverage, or None after a problem."""
    image_path, mask_path = paths.train_dir / img, paths.train_masks_dir / mask_name(img)
    if not _check_jpeg(image_path, findings):
        return None
    try:
        image = read_image(image_path)
    except ValueError:
        findings.add(image_path, "JPEG cannot be decoded")
        return None
    if mask_path.stat().st_size == 0:
        findings.add(mask_path, "zero-byte mask file")
        return None
    try:
        mask = read_mask(mask_path)
    except ValueError as error:
        findings.add(mask_path, f"mask cannot be decoded ({error})")
        return None
    size = image.shape[:2]
    if size != expected_size:
        findings.add(image_path, f"image is {_hw(size)}, expected {_hw(expected_size)}")
    if mask.shape != size:
        findings.add(mask_path, f"mask is {_hw(mask.shape)}, its image is {_hw(size)}")
        return None
    if encoding is not None:
        try:
            decoded = rle.decode(encoding, (mask.shape[0], mask.shape[1]))
        except ValueError as error:
            findings.add(paths.train_masks_csv_path, f"row {img}: malformed RLE ({error})")
            return None
        differing = int(np.count_nonzero(decoded != mask))
        if differing:
            findings.add(
                paths.train_masks_csv_path,
                f"row {img} disagrees with {mask_path.name} in {differing} pixel(s)",
            )
    return float(mask.mean())


def _check_test_image(path: Path, expected_size: tuple[int, int], decode: bool, findings: _Findings) -> None:
    if not _check_jpeg(path, findings):
        return
    try:
        size = read_image(path).shape[:2] if decode else image_size(path)
    except (ValueError, OSError):
        findings.add(path, "JPEG cannot be decoded")
        return
    if size != expected_size:
        findings.add(path, f"image is {_hw(size)}, expected {_hw(expected_size)}")


def _check_jpeg(path: Path, findings: _Findings) -> bool:
    """Check the JPEG start and end markers: catches empty, non-JPEG and truncated files cheaply.

    In a JPEG's entropy-coded data every 0xFF byte is followed by 0x00 or a restart marker, so
    0xFFD9 near the end can only be the end-of-image marker.
    """
    size = path.stat().st_size
    if size == 0:
        findings.add(path, "zero-byte image file")
        return False
    with path.open("rb") as handle:
        head = handle.read(3)
        handle.seek(max(0, size - 64))
        tail = handle.read()
    if head != b"\xff\xd8\xff":
        findings.add(path, "not a JPEG file (no JPEG start marker)")
        return False
    if _JPEG_END not in tail:
        findings.add(path, "truncated JPEG (no end-of-image marker)")
        return False
    return True


def _hw(size: Iterable[int]) -> str:
    height, width = tuple(size)[:2]
    return f"{width}x{height} (WxH)"


def _run(function: Callable[[str], Any], items: list[str], workers: int) -> list[Any]:
    if workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))
