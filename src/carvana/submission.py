"""The submission: shards gathered in sample_submission order, checked, and scored offline.

``gather`` concatenates the prediction shards into ``submission.csv.gz`` (header ``img,rle_mask``,
one row per test image, in sample_submission.csv's order). ``check`` refuses a file that Kaggle
would: a missing, extra or repeated image, or an RLE that is not well formed (ascending,
non-overlapping, inside the image). ``score`` is the competition's metric against true masks,
which only the generated dataset has.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from carvana import rle
from carvana.atomic import atomic_path, write_text
from carvana.layout import DatasetPaths
from carvana.metrics import dice

MAX_LISTED = 20  # problems spelled out in an error; the rest are counted


class SubmissionError(ValueError):
    """The submission is not one Kaggle would accept; the message lists why."""


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def gather(shard_paths: list[Path], sample_submission_path: Path, out_path: Path) -> int:
    """Write the shards' rows, in sample_submission order, to ``out_path`` (gzip); return the row count."""
    rows = pd.concat([_read(path) for path in shard_paths], ignore_index=True)
    order = _read(sample_submission_path)["img"]
    if rows["img"].duplicated().any() or set(rows["img"]) != set(order):
        raise SubmissionError(
            f"the {len(shard_paths)} shards hold {rows['img'].nunique()} distinct of {len(order)} test "
            f"images ({int(rows['img'].duplicated().sum())} repeated); rerun the prediction shards"
        )
    table = rows.set_index("img").loc[order].reset_index()
    with atomic_path(out_path) as temporary:
        table.to_csv(temporary, index=False, compression="gzip")
    return len(table)


def check(submission_path: Path, sample_submission_path: Path, image_size: tuple[int, int]) -> dict[str, Any]:
    """A report of a valid submission; SubmissionError listing every problem otherwise."""
    table = _read(submission_path)
    expected = _read(sample_submission_path)["img"]
    problems: list[str] = []
    if list(table.columns) != ["img", "rle_mask"]:
        problems.append(f"header is {','.join(table.columns)}, expected img,rle_mask")
    else:
        counts = table["img"].value_counts(sort=False)  # one pass, not one scan per repeated image
        for img, times in counts[counts > 1].items():
            problems.append(f"{img}: appears {int(times)} times")
        for img in sorted(set(expected) - set(table["img"])):
            problems.append(f"{img}: missing")
        for img in sorted(set(table["img"]) - set(expected)):
            problems.append(f"{img}: not a test image")
        for img, encoded in zip(table["img"], table["rle_mask"], strict=True):
            try:
                rle.parse(encoded, image_size)
            except ValueError as error:
                problems.append(f"{img}: {error}")
    if problems:
        listed = "\n".join(f"  {problem}" for problem in problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise SubmissionError(f"{submission_path}: {len(problems)} problems\n{listed}{more}")
    empty = int((table["rle_mask"].str.strip() == "").sum())
    return {
        "rows": len(table),
        "empty_masks": empty,
        "image_size": {"height": image_size[0], "width": image_size[1]},
    }


def score(
    submission_path: Path, truth_path: Path, image_size: tuple[int, int], score_path: Path
) -> dict[str, Any]:
    """Mean Dice of the submission against the true masks (the competition's metric); writes JSON."""
    predicted = _read(submission_path).set_index("img")["rle_mask"]
    truth = _read(truth_path).set_index("img")["rle_mask"]
    if set(predicted.index) != set(truth.index):
        raise SubmissionError(f"{submission_path} and {truth_path} hold different images")
    scores = np.array(
        [
            dice(rle.decode(predicted[img], image_size), rle.decode(truth[img], image_size))
            for img in truth.index
        ]
    )
    result = {"mean_dice": float(scores.mean()), "min_dice": float(scores.min()), "images": len(scores)}
    write_text(score_path, json.dumps(result, indent=2) + "\n")
    return result


def size_of_test_images(paths: DatasetPaths) -> tuple[int, int]:
    """(height, width) of the test images, read off the first one sample_submission.csv names
    (every test image has its size)."""
    from carvana.data.images import image_size

    with paths.sample_submission_path.open(encoding="utf-8") as file:
        file.readline()
        first = file.readline().split(",", 1)[0]
    return image_size(paths.image_path("test", first))
