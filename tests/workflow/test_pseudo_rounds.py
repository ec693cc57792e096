"""Pseudo-labelling rounds through Snakemake: which networks label which fold (the leak), a tiny
one-round run to a checked submission, and what a change of ``pseudo`` reruns."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from workflow_runs import TINY, TINY_MODELS, copy_run, edit_config, snakemake, workflow_copy

MODELS = tuple(TINY_MODELS)


def _jobs(text: str, rule: str) -> list[str]:
    """The blocks of a dry run's ``-p`` output that are jobs of ``rule``."""
    blocks = re.split(r"^(?=(?:local)?rule \w+:$)", text, flags=re.MULTILINE)
    return [block for block in blocks if block.startswith(f"rule {rule}:")]


def _flag(block: str, flag: str) -> list[str]:
    """The values of ``flag`` in a job's shell command, up to the next flag."""
    command = block[block.index("carvana ") :]
    match = re.search(rf"{flag} (.*?)(?: --|$)", command, flags=re.MULTILINE)
    return match.group(1).split() if match else []


def test_fold_ks_labels_come_from_the_round_befores_fold_k_networks_alone(tmp_path: Path) -> None:
    """The leak this catches: labels of fold k made by the whole ensemble, whose other folds'
    networks trained on fold k's held-out images, would carry their masks into fold k's OOF score."""
    work = workflow_copy(tmp_path, {**TINY, "folds": {"n_folds": 3, "seed": 3}, "pseudo": {"rounds": 2}})
    text = snakemake(work, "-n", "-p").stdout
    labelling = _jobs(text, "pseudo_labels")
    assert len(labelling) == 2 * 3 * 2  # two rounds of three folds, each in prediction's two shards
    shards: dict[tuple[int, int], list[str]] = {}
    for block in labelling:
        number, fold = map(int, re.search(r"wildcards: round=(\d+), fold=(\d+)", block).groups())  # type: ignore[union-attr]
        before = "results" if number == 1 else f"results/pseudo/round{number - 1}"
        assert sorted(_flag(block, "--weights")) == sorted(
            f"{before}/models/{model}/fold{fold}/weights.pt" for model in MODELS
        )
        assert _flag(block, "--fold") == [str(fold)]
        assert _flag(block, "--thresholds-path") == [f"{before}/tuning/thresholds.json"]
        index, count = _flag(block, "--shard")[0], _flag(block, "--shards")[0]
        assert _flag(block, "--out-dir") == [
            f"results/pseudo/round{number}/labels/fold{fold}/shard_{index}-of-{count}"
        ]
        shards.setdefault((number, fold), []).append(f"{index}-of-{count}")
    assert {key: sorted(found) for key, found in shards.items()} == {
        (number, fold): ["1-of-2", "2-of-2"] for number in (1, 2) for fold in range(3)
    }
    tables = _jobs(text, "pseudo_labels_table")
    assert len(tables) == 2 * 3
    for block in tables:  # a fold's table gathers that fold's shards alone
        number, fold = map(int, re.search(r"wildcards: round=(\d+), fold=(\d+)", block).groups())  # type: ignore[union-attr]
        folder = f"results/pseudo/round{number}/labels/fold{fold}"
        assert _flag(block, "--shard-dir") == [f"{folder}/shard_1-of-2", f"{folder}/shard_2-of-2"]
        assert _flag(block, "--out-path") == [f"{folder}/labels.csv"]
    training = _jobs(text, "train")
    assert len(training) == 3 * 3 * 3  # three rounds of three models on three folds
    for block in training:
        where, model, fold = re.search(r"wildcards: results=(\S+), model=(\w+), fold=(\d+)", block).groups()  # type: ignore[union-attr]
        if where == "results":  # round 0: no pseudo labels, whatever pseudo says
            assert "--pseudo-labels" not in block and "--init-weights" not in block
            continue
        number = int(where.rsplit("round", 1)[1])
        before = "results" if number == 1 else f"results/pseudo/round{number - 1}"
        assert _flag(block, "--pseudo-labels") == [f"{where}/labels/fold{fold}"]
        assert _flag(block, "--init-weights") == [f"{before}/models/{model}/fold{fold}/weights.pt"]


def test_no_round_plans_the_plain_pipeline(tmp_path: Path) -> None:
    text = snakemake(workflow_copy(tmp_path, TINY), "-n", "--quiet", "rules").stdout
    assert "pseudo" not in text and "train " in text


# unet1024 alone, its 3 epochs: round 1's networks learn from labels of round 0's (OOF Dice 0.57
# and 0.82); a lower bar than round 0's flags none of them, whatever round 1 makes of the labels
ONE_ROUND = {
    **TINY,
    "models": {"unet1024": TINY_MODELS["unet1024"]},
    "tune": {"flag": {"min_dice": 0.05, "max_gap": 0.9}},
    "pseudo": {"rounds": 1, "share": 0.5},
}


@pytest.fixture(scope="module")
def one_round(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = workflow_copy(tmp_path_factory.mktemp("one_round"), ONE_ROUND)
    snakemake(work, "--cores", "2", timeout_s=1500)
    return work


@pytest.mark.slow
def test_one_round_goes_to_a_checked_submission_and_a_table_beside_round_0(one_round: Path) -> None:
    work, round_one = one_round, one_round / "results/pseudo/round1"
    sample = pd.read_csv(work / "results/data/sample_submission.csv")
    submission = pd.read_csv(round_one / "submission.csv.gz", keep_default_na=False)
    assert submission["img"].tolist() == sample["img"].tolist()
    assert json.loads((round_one / "submission_check.json").read_text())["rows"] == 32
    table = pd.read_csv(work / "results/pseudo/rounds.csv")
    assert table["round"].tolist() == [0, 1]
    for row, folder in zip(table.itertuples(), [work / "results", round_one], strict=True):
        tuned = json.loads((folder / "tuning/thresholds.json").read_text())
        assert row.oof_dice == pytest.approx(tuned["ensemble"]["dice"], abs=1e-6)
        assert row.score == pytest.approx(
            json.loads((folder / "score.json").read_text())["mean_dice"], abs=1e-6
        )
        assert row.job_s > 0
    # each figure written to 6 decimals: the difference of two within 1e-6 of the written one
    change = table["score"].iloc[1] - table["score"].iloc[0]
    assert table["score_vs_round0"].iloc[1] == pytest.approx(change, abs=2e-6)


@pytest.mark.slow
def test_each_folds_labels_are_one_bit_masks_of_every_test_image(one_round: Path) -> None:
    sample = pd.read_csv(one_round / "results/data/sample_submission.csv")["img"].tolist()
    for fold in (0, 1):
        folder = one_round / f"results/pseudo/round1/labels/fold{fold}"
        labels = pd.read_csv(folder / "labels.csv")
        assert labels["img"].tolist() == sample
        assert {mask.split("/")[0] for mask in labels["mask"]} == {"shard_1-of-2", "shard_2-of-2"}
        for img, area, mask in zip(labels["img"], labels["area"], labels["mask"], strict=True):
            assert mask.endswith("/" + img.replace(".jpg", ".png"))
            with Image.open(folder / mask) as image:
                assert image.mode == "1" and image.size == (96, 64)
                assert int(np.count_nonzero(np.asarray(image))) == area
        log = (one_round / f"results/pseudo/round1/logs/train/unet1024_fold{fold}.log").read_text()
        usable = int((labels["area"] > 0).sum())
        taken = max(1, round(0.5 * usable))
        assert f"pseudo labels: {taken} test images (confident, share 0.5)" in log
        assert f"from results/models/unet1024/fold{fold}/weights.pt" in log


def _plan(work: Path) -> tuple[dict[str, int], set[str]]:
    """A dry run's job counts per rule, and the folders (the {results} wildcard or the labels'
    round) its jobs write to."""
    text = snakemake(work, "-n").stdout
    if "Nothing to be done" in text:
        return {}, set()
    stats = text[text.index("Job stats:") : text.index("total")]
    counts = {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", stats, re.MULTILINE)}
    where = set(re.findall(r"results=(\S+?)[,\s]", text)) | {
        f"labels of round {number}" for number in re.findall(r"round=(\d+)", text)
    }
    return counts, where


ROUND_ONE_AFTER_TRAINING = {
    "train": 2,
    "oof": 2,
    "tune_threshold": 1,
    "predict": 2,
    "submission": 1,
    "validate_submission": 1,
    "score": 1,
    "pseudo_rounds": 1,
    "all": 1,
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "planned", "where"),
    [
        ({"pseudo.share": 0.25}, ROUND_ONE_AFTER_TRAINING, {"results/pseudo/round1"}),
        ({"pseudo.start": "scratch"}, ROUND_ONE_AFTER_TRAINING, {"results/pseudo/round1"}),
        (
            {"pseudo.band": 0.1},
            {"pseudo_labels": 4, "pseudo_labels_table": 2, **ROUND_ONE_AFTER_TRAINING},
            {"results/pseudo/round1", "labels of round 1"},
        ),
        (
            {"pseudo.rounds": 2},
            {"pseudo_labels": 4, "pseudo_labels_table": 2, **ROUND_ONE_AFTER_TRAINING},
            {"results/pseudo/round2", "labels of round 2"},
        ),
        ({"pseudo.rounds": 0}, {}, set()),
    ],
)
def test_a_pseudo_setting_reruns_only_the_rounds_it_touches_never_round_0(
    one_round: Path, tmp_path: Path, change: dict[str, object], planned: dict[str, int], where: set[str]
) -> None:
    work = copy_run(one_round, tmp_path / "work")
    edit_config(work, change)
    assert _plan(work) == (planned, where)
