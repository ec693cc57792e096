"""Tuning's one pass over the maps: each map read once, the same answer from a pool of processes
as from one, and the competition's count of images."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from carvana import rle
from carvana.tuning import scan as scan_module
from carvana.tuning.blend import blend_curves
from carvana.tuning.oof_set import TunePaths
from carvana.tuning.scan import map_curve
from carvana.tuning.threshold import ThresholdGrid
from carvana.tuning.tune import tune
from oof_sets import IMAGES, oof_set


def _maps(seed: int) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Three models' noisy maps of four 20x30 images; "b" learnt nothing on fold 1 (all zero)."""
    rng = np.random.default_rng(seed)
    truth = {img: (rng.random((20, 30)) > 0.5).astype(np.uint8) for img in IMAGES}
    maps: dict[str, dict[str, np.ndarray]] = {}
    for index, model in enumerate(["a", "b", "c"]):
        maps[model] = {}
        for img, fold in IMAGES.items():
            noisy = truth[img] * (120 + 20 * index) + rng.normal(70, 45, truth[img].shape)
            maps[model][img] = np.clip(noisy, 0, 255).astype(np.uint8)
            if model == "b" and fold == 1:
                maps[model][img] = np.zeros_like(truth[img])
    return maps, truth


def test_a_maps_curve_alone_is_the_blend_of_that_map_alone() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random((37, 53)) > 0.6
    probability = rng.integers(0, 256, truth.shape, dtype=np.uint8)
    columns = np.append(ThresholdGrid().values(), 0.5)
    offset = truth.ravel().astype(np.uint16) * np.uint16(256)
    alone = map_curve(probability, offset, columns)
    np.testing.assert_array_equal(alone, blend_curves([probability], truth, np.ones((1, 1)), columns)[0])
    assert len(set(np.round(alone, 6))) > 10  # the thresholds do change the mask


def test_each_map_is_read_once_and_a_left_out_networks_fold_once_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    maps, truth = _maps(seed=4)
    paths = oof_set(tmp_path, maps, truth)
    reads: Counter[str] = Counter()
    read_oof = scan_module.read_oof

    def counting(path: Path) -> np.ndarray:
        reads[str(path.relative_to(paths.models_dir))] += 1
        return read_oof(path)

    monkeypatch.setattr(scan_module, "read_oof", counting)
    fine = tune(paths, ["a", "c"], ThresholdGrid(0.3, 0.7, 0.05), auto=True)
    assert fine["flagged"] == {}
    # 2 models x 4 images x (with TTA, without): each of the 16 maps once
    assert len(reads) == 16 and set(reads.values()) == {1}
    reads.clear()
    auto = tune(paths, ["a", "b", "c"], ThresholdGrid(0.3, 0.7, 0.05), auto=True)
    assert auto["left_out"] == ["b/fold1"]
    # fold 1's two images are blended again without b's network: their 3 TTA maps once more
    again = {name for name, count in reads.items() if count == 2}
    assert again == {f"{m}/fold1/oof/{img[:-4]}.png" for m in "abc" for img, f in IMAGES.items() if f == 1}
    assert len(reads) == 24 and sum(reads.values()) == 24 + 6


def test_a_pool_of_processes_writes_what_one_process_writes(tmp_path: Path) -> None:
    maps, truth = _maps(seed=5)
    outputs = {}
    for threads in (1, 2):
        (tmp_path / f"threads{threads}").mkdir()
        paths = oof_set(tmp_path / f"threads{threads}", maps, truth)
        tune(paths, ["a", "b", "c"], ThresholdGrid(0.3, 0.7, 0.01), auto=True, threads=threads)
        outputs[threads] = {
            name: (paths.out_dir / name).read_text()
            for name in ("thresholds.json", "oof_scores.csv", "oof_images.csv", "ablation.csv")
        }
    assert '"left_out": [\n    "b/fold1"\n  ]' in outputs[1]["thresholds.json"]  # the second pass ran
    assert outputs[2] == outputs[1]


def test_a_missing_map_in_a_worker_names_the_job_to_rerun(tmp_path: Path) -> None:
    maps, truth = _maps(seed=6)
    paths = oof_set(tmp_path, maps, truth)
    (paths.models_dir / "c/fold1/oof_plain/bbbbbbbbbbbb_02.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"c/fold1/oof_plain/bbbbbbbbbbbb_02\.png: missing .* rerun"):
        tune(paths, ["a", "b", "c"], ThresholdGrid(0.3, 0.7, 0.1), threads=2)
    assert not paths.out_dir.exists()


def test_tuning_at_the_competitions_count_recovers_the_weights_that_made_the_masks(tmp_path: Path) -> None:
    """5,088 images of 318 cars in 5 folds, three models' 6x8 maps: each mask is what the blend
    (0.6, 0.3, 0.1) gives at 0.5, so the search must find those weights, over every image."""
    rng = np.random.default_rng(8)
    cars = [f"{car:012x}" for car in range(318)]
    images = [f"{car}_{view:02d}.jpg" for car in cars for view in range(1, 17)]
    folds = pd.DataFrame({"img": images, "car_id": [img[:12] for img in images]})
    folds["fold"] = [cars.index(car) % 5 for car in folds["car_id"]]
    maps = rng.integers(0, 256, (3, len(images), 6, 8))
    total = 6 * maps[0] + 3 * maps[1] + maps[2]
    maps[0] = np.where(np.abs(total - 1275) < 4, (maps[0] + 128) % 256, maps[0])  # nothing on the edge
    total = 6 * maps[0] + 3 * maps[1] + maps[2]
    keep = np.abs(total - 1275) >= 4
    masks = (total >= 1275).astype(np.uint8) * keep + (maps[0] > 127) * ~keep
    data_dir, models_dir = tmp_path / "data", tmp_path / "models"
    data_dir.mkdir()
    pd.DataFrame({"img": images, "rle_mask": [rle.encode(mask) for mask in masks]}).to_csv(
        data_dir / "train_masks.csv", index=False
    )
    folds.to_csv(tmp_path / "folds.csv", index=False)
    for index, model in enumerate("abc"):
        for fold in range(5):
            for folder in ("oof", "oof_plain"):
                (models_dir / model / f"fold{fold}" / folder).mkdir(parents=True)
        for row, (img, fold) in enumerate(zip(images, folds["fold"], strict=True)):
            for folder in ("oof", "oof_plain"):
                path = models_dir / model / f"fold{fold}" / folder / img.replace(".jpg", ".png")
                cv2.imwrite(str(path), maps[index, row].astype(np.uint8))
    paths = TunePaths(data_dir, tmp_path / "folds.csv", models_dir, tmp_path / "tuning")
    result = tune(paths, ["a", "b", "c"], ThresholdGrid(0.3, 0.7, 0.01), auto=True, threads=2)
    assert result["images"] == 5088 and result["weights"] == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.1})
    per_image = pd.read_csv(paths.out_dir / "oof_images.csv")
    assert len(per_image) == 5088 and per_image["fold"].value_counts().tolist() == [
        1024,
        1024,
        1024,
        1008,
        1008,
    ]
    assert (per_image["ensemble"] < 1).sum() < 0.05 * 5088  # the edge pixels aside, exact
    ablation = pd.read_csv(paths.out_dir / "ablation.csv").set_index("step")
    assert [f"dice_fold{fold}" in ablation for fold in range(5)] == [True] * 5
