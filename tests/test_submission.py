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


def test_a_submission_of_the_competitions_100064_rows_is_gathered_and_checked(tmp_path: Path) -> None:
    """The competition's count of test images, on 4x6 masks: 16 shards gathered in order, every
    row checked; 3,000 rows repeated (and as many images then missing) are each listed, counted
    in one pass (a scan of the table per repeated image took minutes)."""
    names = [f"{car:012x}_{view:02d}.jpg" for car in range(6254) for view in range(1, 17)]
    assert len(names) == 100_064
    codes = [rle.encode(np.arange(24).reshape(4, 6) % (k + 2) == 0) for k in range(5)]
    rows = pd.DataFrame({"img": names, "rle_mask": [codes[i % 5] for i in range(len(names))]})
    sample = _csv(tmp_path / "sample_submission.csv", [(img, "1 1") for img in names])
    bounds = np.linspace(0, len(names), 17).round().astype(int)
    shards = []
    for index in range(16):
        shards.append(tmp_path / f"shard_{index + 1}.csv")
        rows.iloc[bounds[index] : bounds[index + 1]].to_csv(shards[-1], index=False)
    out = tmp_path / "submission.csv.gz"
    assert gather(shards[::-1], sample, out) == 100_064
    assert check(out, sample, (4, 6)) == {
        "rows": 100_064,
        "empty_masks": 0,
        "image_size": {"height": 4, "width": 6},
    }
    repeated = rows.copy()
    repeated.loc[50_000:52_999, "img"] = names[:3000]  # the first 3,000 images twice, 3,000 missing
    bad = tmp_path / "repeated.csv"
    repeated.to_csv(bad, index=False)
    with pytest.raises(SubmissionError) as caught:
        check(bad, sample, (4, 6))
    message = str(caught.value)
    assert "repeated.csv: 6000 problems" in message  # 3,000 repeated and 3,000 missing
    assert f"{names[0]}: appears 2 times" in message and f"{names[19]}: appears 2 times" in message
    assert "... and 5980 more" in message
