"""Gathering, checking and scoring the submission, on hand-made files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carvana import rle
from carvana.submission import SubmissionError, check, gather, score

IMAGES = ["aaaaaaaaaaaa_01.jpg", "aaaaaaaaaaaa_02.jpg", "bbbbbbbbbbbb_01.jpg"]


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    pd.DataFrame(rows, columns=["img", "rle_mask"]).to_csv(path, index=False)
    return path


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return _csv(tmp_path / "sample_submission.csv", [(img, "1 1") for img in IMAGES])


def test_gather_writes_sample_submission_order_whatever_the_shards_order(
    tmp_path: Path, sample: Path
) -> None:
    shards = [
        _csv(tmp_path / "s2.csv", [(IMAGES[2], "")]),
        _csv(tmp_path / "s1.csv", [(IMAGES[1], "3 2"), (IMAGES[0], "1 4")]),
    ]
    out = tmp_path / "submission.csv.gz"
    assert gather(shards, sample, out) == 3
    with gzip.open(out, "rt") as file:
        assert file.read().splitlines() == [
            "img,rle_mask",
            f"{IMAGES[0]},1 4",
            f"{IMAGES[1]},3 2",
            f"{IMAGES[2]},",
        ]
    assert check(out, sample, (3, 4)) == {
        "rows": 3,
        "empty_masks": 1,
        "image_size": {"height": 3, "width": 4},
    }


def test_gather_refuses_shards_that_miss_or_repeat_images(tmp_path: Path, sample: Path) -> None:
    shards = [
        _csv(tmp_path / "s1.csv", [(IMAGES[0], ""), (IMAGES[1], "")]),
        _csv(tmp_path / "s2.csv", [(IMAGES[1], "")]),
    ]
    with pytest.raises(SubmissionError, match=r"hold 2 distinct of 3 test images \(1 repeated\)"):
        gather(shards, sample, tmp_path / "out.csv.gz")
    assert not (tmp_path / "out.csv.gz").exists()


def test_check_lists_every_problem_as_kaggle_would_refuse_it(tmp_path: Path, sample: Path) -> None:
    bad = _csv(
        tmp_path / "bad.csv",
        [(IMAGES[0], "5 2 1 2"), (IMAGES[0], "1 1"), ("cccccccccccc_01.jpg", "1 1"), ("x", "11 5")],
    )
    with pytest.raises(SubmissionError) as caught:
        check(bad, sample, (3, 4))
    message = str(caught.value)
    assert "bad.csv: 7 problems" in message  # x is also not a test image
    for expected in (
        f"{IMAGES[0]}: appears 2 times",
        f"{IMAGES[1]}: missing",
        f"{IMAGES[2]}: missing",
        "cccccccccccc_01.jpg: not a test image",
        f"{IMAGES[0]}: RLE runs must ascend",
        "x: not a test image",
        "x: an RLE run ends at pixel 15, past the 3x4 mask",
    ):
        assert expected in message


def test_score_is_the_mean_dice_worked_out_by_hand(tmp_path: Path) -> None:
    truth = _csv(tmp_path / "truth.csv", [(IMAGES[0], "1 4"), (IMAGES[1], "")])
    # image 0: 2 of the 4 true pixels predicted, nothing else -> 2*2/(2+4) = 2/3; image 1: both empty -> 1
    submission = _csv(tmp_path / "sub.csv", [(IMAGES[1], ""), (IMAGES[0], "1 2")])
    result = score(submission, truth, (2, 3), tmp_path / "score.json")
    assert result["mean_dice"] == pytest.approx((2 / 3 + 1) / 2)
    assert result["min_dice"] == pytest.approx(2 / 3)
    assert json.loads((tmp_path / "score.json").read_text()) == result
    assert rle.decode("1 4", (2, 3)).sum() == 4 and np.count_nonzero(rle.decode("1 2", (2, 3))) == 2
