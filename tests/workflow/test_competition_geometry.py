"""The competition's geometry, run for real on a CPU: full-size 1918x1280 images through
competition.yaml's input and tile sizes, from the data to a checked submission.

What runs here as on a GPU box: the generated images at the competition's size; unet on 572x572
overlap tiles over the whole 1280x1918 image (one random tile per image in training, every tile in
validation and prediction); unet1024 resized to 1024x1024 and unet11 to 1280x1920, and every map
back to 1280x1918; OOF maps, tuning, prediction and RLE at full size. Without the flip view: it
doubled every OOF and prediction forward here (the test's longest jobs), and
tests/prediction/test_ensemble.py checks it pixel by pixel at these sizes, each member alone and
the three blended.

What is learnt: unet trains 8 steps, enough to beat calling every pixel car, so
its maps' geometry shows in the score. unet1024 and unet11 take one step each: at these sizes
even 8 steps taught them too little for tuning to weigh them (weight 0, measured), so a score
could not show their geometry; tests/prediction/test_ensemble.py does, at these sizes, with
per-pixel networks. Here they run every stage at their sizes: training, OOF maps, prediction.

What only a GPU can run, and so is missing here: the networks at width 1 (22.9 to 35.4 million
parameters; here a few channels per layer), hence unet11 from ImageNet VGG11 weights, which
exist at width 1 only; the configured batch sizes (4 to 8) at these sizes; bf16 or fp16 autocast on
CUDA; predict.compile; DataLoader workers with pinned memory; 5 folds, 40 epochs and the 100,064
test images.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_runs import ROOT, snakemake, workflow_copy

from carvana.rle import decode

WIDTHS = {"unet": 0.0625, "unet1024": 0.125, "unet11": 0.0625}  # 4, 8 and 4 channels in the first layer
HEIGHT, WIDTH = 1280, 1918


def cpu_sized_competition() -> dict[str, object]:
    """competition.yaml's models (architecture, input and tile sizes kept) thinned for a CPU, on
    generated data at the competition's size: 2 training cars, 1 test car, 2 folds. unet takes 8
    steps of 2 images (with 2 steps it learnt too little to beat calling every pixel car), as 2
    epochs of 4 whose held-out images are scored once, the first 8 of 16 (every tile of all 16 cost
    as much as the 8 steps, and the OOF job scores them all again); the others take 1 step of 1
    image and score 1.
    Float32: with a few channels per layer at these sizes, bf16 is 5-8x slower on a CPU."""
    competition = yaml.safe_load((ROOT / "competition.yaml").read_text())
    models = {}
    for name, entry in competition["models"].items():
        models[name] = {
            **{key: entry[key] for key in ("arch", "input_size", "tile_size", "optimizer") if key in entry},
            **{
                "width": WIDTHS[name],
                "gpu": 0,
                "precision": "32-true",
                **(
                    {"epochs": 2, "steps_per_epoch": 4, "validate_every": 2, "batch_size": 2}
                    if name == "unet"
                    else {"epochs": 1, "steps_per_epoch": 1, "batch_size": 1}
                ),
            },
        }
    return {
        "synthetic": {"train_cars": 2, "test_cars": 1, "image_scale": 1.0, "seed": 5},
        "folds": {"n_folds": 2, "seed": 1},
        # a thread a job, so that the OOF jobs and the two shards run two at a time; one view
        "predict": {"shards": 2, "batch_size": 2, "threads": 1, "tta": {"hflip": False}},
        # thin networks after a step or eight are weak by design here: none is flagged,
        # so that auto weights blend them (tests/tuning and the tiny run test the flags)
        "tune": {"flag": {"min_dice": 0.0, "max_gap": 1.0}},
        # 6 blends, not 66: noisy one-epoch maps differ at most pixels, and each blend of a
        # full-size image then costs about 0.1 s on these cores
        "ensemble": {**competition["ensemble"], "weight_step": 0.5},
        "report": {"worst_images": 2},  # each a full-size figure
        "models": models,
    }


@pytest.mark.slow
def test_full_resolution_runs_from_data_to_a_checked_submission(tmp_path: Path) -> None:
    config = cpu_sized_competition()
    work = workflow_copy(tmp_path, config)
    snakemake(work, "--cores", "2", timeout_s=1200)  # about 5 minutes on 2 cores
    results = work / "results"

    models = config["models"]
    assert isinstance(models, dict)
    assert models["unet"]["tile_size"] == [572, 572] and models["unet11"]["input_size"] == [1280, 1920]
    folds = pd.read_csv(results / "folds.csv")
    assert len(folds) == 32 and folds.groupby("fold")["car_id"].nunique().tolist() == [1, 1]
    for name in models:
        for fold in (0, 1):
            oof = sorted((results / f"models/{name}/fold{fold}/oof").glob("*.png"))
            assert len(oof) == 16
            assert cv2.imread(str(oof[0]), cv2.IMREAD_UNCHANGED).shape == (HEIGHT, WIDTH)

    for name, scored in (("unet", 8), ("unet1024", 1), ("unet11", 1)):  # the first batches held out
        log = (results / f"logs/train/{name}_fold0.log").read_text()
        assert "held-out Dice" in log and f"at the input size (its first {scored} of 16)" in log, log[-400:]

    check = json.loads((results / "submission_check.json").read_text())
    assert check["rows"] == 16
    submission = pd.read_csv(results / "submission.csv.gz", keep_default_na=False)
    masks = [decode(rle, (HEIGHT, WIDTH)) for rle in submission["rle_mask"]]
    assert all(mask.shape == (HEIGHT, WIDTH) and 0 < mask.mean() < 1 for mask in masks)
    # One epoch of thin networks segments poorly, but a map shifted, flipped or stitched wrong at
    # full size scores below calling every pixel car, whose Dice is 2c / (1 + c) at coverage c.
    truth = pd.read_csv(work / "results/truth/test_masks.csv")
    coverage = np.array([decode(rle, (HEIGHT, WIDTH)).mean() for rle in truth["rle_mask"]])
    everything = float(np.mean(2 * coverage / (1 + coverage)))
    score = json.loads((results / "score.json").read_text())
    assert score["images"] == 16
    assert score["mean_dice"] > everything + 0.05, (score, everything)  # measured: 0.728 against 0.362

    # memory: a prediction shard holds a few full-size batches, never the test set
    peak_mib = {
        path.stem: float(pd.read_csv(path, sep="\t")["max_rss"].iloc[0])
        for path in (results / "benchmarks").rglob("*.tsv")
    }
    assert max(peak_mib.values()) < 6000, peak_mib
    print({key: round(value) for key, value in sorted(peak_mib.items())})
