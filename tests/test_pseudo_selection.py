"""Which pseudo labels a round takes, and the table that compares the rounds, worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from carvana.pseudo import RoundTraining, label_name, rounds_table, select_pseudo

# five labelled test images: b's mask is empty; c and d tie on the least uncertain share
TABLE = pd.DataFrame(
    {
        "img": ["a_01.jpg", "b_01.jpg", "c_01.jpg", "d_01.jpg", "e_01.jpg"],
        "area": [10, 0, 5, 7, 3],
        "uncertain": [0.3, 0.0, 0.1, 0.1, 0.5],
    }
)


def test_confident_takes_the_share_of_least_uncertain_masks_never_an_empty_one() -> None:
    # four usable masks (b is empty, though its uncertain share is the least); half of four is two
    assert select_pseudo(TABLE, 0.5, "confident", seed=0) == ["c_01.jpg", "d_01.jpg"]
    # a quarter of four: one, and of the tie c and d the first by name
    assert select_pseudo(TABLE, 0.25, "confident", seed=0) == ["c_01.jpg"]
    assert select_pseudo(TABLE, 1.0, "confident", seed=0) == ["a_01.jpg", "c_01.jpg", "d_01.jpg", "e_01.jpg"]
    # 0.1 of four rounds to none: at least one is taken
    assert select_pseudo(TABLE, 0.1, "confident", seed=0) == ["c_01.jpg"]


def test_random_draws_the_share_by_seed_from_the_usable_masks() -> None:
    drawn = {tuple(select_pseudo(TABLE, 0.5, "random", seed)) for seed in range(40)}
    assert all(len(pick) == 2 and "b_01.jpg" not in pick for pick in drawn)
    assert len(drawn) > 3  # of the six pairs of four images, the seeds draw several
    assert select_pseudo(TABLE, 0.5, "random", seed=7) == select_pseudo(TABLE, 0.5, "random", seed=7)


@pytest.mark.parametrize(
    ("share", "how", "message"),
    [(0.0, "confident", "pseudo.share"), (1.5, "random", "pseudo.share"), (0.5, "best", "pseudo.select")],
)
def test_a_bad_setting_is_refused_by_name(share: float, how: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        select_pseudo(TABLE, share, how, seed=0)


def test_labels_that_are_all_empty_are_refused() -> None:
    empty = TABLE.assign(area=0)
    with pytest.raises(ValueError, match="every pseudo label is an empty mask"):
        select_pseudo(empty, 1.0, "confident", seed=0)


def test_a_round_draws_ratio_times_its_real_images_per_epoch(tmp_path: Path) -> None:
    assert RoundTraining(tmp_path, ratio=1.0).per_epoch(208) == 208
    assert RoundTraining(tmp_path, ratio=0.25).per_epoch(208) == 52
    assert RoundTraining(tmp_path, ratio=0.001).per_epoch(208) == 1
    with pytest.raises(ValueError, match=r"pseudo\.ratio"):
        RoundTraining(tmp_path, ratio=0.0)


def test_a_missing_labels_table_says_the_labels_job_did_not_finish(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="pseudo labels job did not finish"):
        RoundTraining(tmp_path).chosen(seed=0)


def test_a_round_takes_each_chosen_images_mask_from_the_file_its_table_names(tmp_path: Path) -> None:
    masks = [f"shard_{1 if number < 3 else 2}-of-2/{img[:-4]}.png" for number, img in enumerate(TABLE["img"])]
    TABLE.assign(mask=masks).to_csv(tmp_path / "labels.csv", index=False)
    chosen = RoundTraining(tmp_path, share=0.5).chosen(seed=0)
    assert chosen == [
        ("c_01.jpg", tmp_path / "shard_1-of-2/c_01.png"),
        ("d_01.jpg", tmp_path / "shard_2-of-2/d_01.png"),
    ]
    TABLE.to_csv(tmp_path / "labels.csv", index=False)  # a shard's own table: no mask files
    with pytest.raises(ValueError, match="lists no mask files"):
        RoundTraining(tmp_path).chosen(seed=0)


def test_a_label_is_named_after_its_test_image() -> None:
    assert label_name("0cdf5b5d0ce1_01.jpg") == "0cdf5b5d0ce1_01.png"


def _round(
    folder: Path, dice: float, threshold: float, score: float | None, seconds: dict[str, float]
) -> None:
    (folder / "tuning").mkdir(parents=True)
    (folder / "tuning/thresholds.json").write_text(
        json.dumps({"threshold": threshold, "ensemble": {"dice": dice}})
    )
    if score is not None:
        (folder / "score.json").write_text(json.dumps({"mean_dice": score}))
    for name, value in seconds.items():
        path = folder / "benchmarks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{value}\t0:00:00\t1\n")


def test_the_rounds_table_holds_each_rounds_figures_and_their_change_from_round_0(tmp_path: Path) -> None:
    zero, one = tmp_path / "results", tmp_path / "results/pseudo/round1"
    _round(zero, 0.9, 0.5, 0.91, {"train/unet_fold0.tsv": 10.0, "oof/unet_fold0.tsv": 5.0, "data.tsv": 99.0})
    _round(
        one,
        0.93,
        0.45,
        0.92,
        {"pseudo_labels/fold0.tsv": 2.0, "train/unet_fold0.tsv": 20.0, "predict/shard_1-of-1.tsv": 1.5},
    )
    table = rounds_table([zero, one])
    assert table["round"].tolist() == [0, 1]
    assert table["threshold"].tolist() == [0.5, 0.45]
    assert table["job_s"].tolist() == [15.0, 23.5]  # data.tsv is no stage of a round
    assert table["job_s_vs_round0"].tolist() == [0.0, 8.5]
    assert table["oof_dice_vs_round0"].round(6).tolist() == [0.0, 0.03]
    assert table["score_vs_round0"].round(6).tolist() == [0.0, 0.01]


def test_the_rounds_table_of_the_real_competition_has_no_score(tmp_path: Path) -> None:
    _round(tmp_path / "results", 0.99, 0.5, None, {})
    table = rounds_table([tmp_path / "results"])
    assert table["score"].isna().all() and table["job_s"].tolist() == [0.0]
