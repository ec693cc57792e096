"""The pseudo-labels job: one fold's networks alone, masks as a submission of them would hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from carvana import rle
from carvana.data.images import read_image, read_mask
from carvana.layout import DatasetPaths
from carvana.models.build import build_model
from carvana.models.inference import mixed_precision_dtype
from carvana.models.spec import ModelSpec
from carvana.prediction import pseudo as pseudo_module
from carvana.prediction.ensemble import Ensemble, load_member
from carvana.prediction.pseudo import PseudoSpec, uncertain_share, write_pseudo_labels
from carvana.prediction.shard import ShardSpec, predict_shard
from carvana.prediction.tta import TTASpec
from carvana.pseudo import LABELS_TABLE, gather_labels

MODELS = {
    "unet1024": {"arch": "unet1024", "width": 0.125, "input_size": [64, 64]},
    "unet11": {"arch": "unet11", "width": 0.125, "input_size": [32, 64]},
}


@pytest.fixture(scope="module")
def weights_by_fold(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[Path]]:
    """weights.pt of random networks: both models on fold 0, unet1024 on fold 1."""
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(5)
    paths: dict[int, list[Path]] = {0: [], 1: []}
    for fold, name in [(0, "unet1024"), (0, "unet11"), (1, "unet1024")]:
        spec = ModelSpec.from_entry(name, {**MODELS[name], "gpu": 0})
        path = root / f"{name}_fold{fold}.pt"
        state = build_model(spec).state_dict()
        torch.save({"spec": spec.to_json(), "fold": fold, "epoch": 1, "state_dict": state}, path)
        paths[fold].append(path)
    return paths


def _median_threshold(data_dir: Path, weights: list[Path], tta: TTASpec) -> float:
    """Random networks: the median probability of the first test image gives masks of substance."""
    paths = DatasetPaths(data_dir)
    first = pd.read_csv(paths.sample_submission_path)["img"].iloc[0]
    device = torch.device("cpu")
    members = [load_member(path, device) for path in weights]
    ensemble = Ensemble(members, tta, device, mixed_precision_dtype(device))
    return float(np.median(ensemble.probabilities([read_image(paths.image_path("test", first))])[0]))


def test_the_labels_are_the_masks_a_submission_of_the_folds_networks_holds(
    tiny_dataset, weights_by_fold: dict[int, list[Path]], tmp_path: Path
) -> None:
    tta = TTASpec(hflip=True)
    weights = weights_by_fold[0]
    tuned = {"threshold": _median_threshold(tiny_dataset.data_dir, weights, tta), "weights": {"unet11": 0.5}}
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps(tuned))
    labels_dir = tmp_path / "labels"
    spec = PseudoSpec(tta, batch_size=5, gpu=0)
    table = write_pseudo_labels(spec, tiny_dataset.data_dir, weights, thresholds, 0, labels_dir)
    predict_shard(
        ShardSpec(1, 1, 5, tta, gpu=0), tiny_dataset.data_dir, weights, thresholds, tmp_path / "sub.csv"
    )

    submission = pd.read_csv(tmp_path / "sub.csv").fillna("")
    assert table["img"].tolist() == submission["img"].tolist() and len(table) == 32
    assert pd.read_csv(labels_dir / LABELS_TABLE)["img"].tolist() == table["img"].tolist()
    for img, area, expected in zip(table["img"], table["area"], submission["rle_mask"], strict=True):
        label = labels_dir / img.replace(".jpg", ".png")
        with Image.open(label) as image:
            assert image.mode == "1" and image.size == (96, 64)  # 1 bit a pixel, the image's size
        mask = read_mask(label)
        assert rle.encode(mask) == expected and int(mask.sum()) == area
    assert table["area"].nunique() > 10  # masks of substance, not all empty or full


def test_networks_of_another_fold_are_refused_before_any_label_is_written(
    tiny_dataset, weights_by_fold: dict[int, list[Path]], tmp_path: Path
) -> None:
    """The leak: fold 1's network saw fold 0's held-out images, so fold 0's labels would carry
    their masks into fold 0's OOF score."""
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"threshold": 0.5}))
    every = weights_by_fold[0] + weights_by_fold[1]
    with pytest.raises(ValueError, match=r"fold 0's networks alone.*unet1024_fold1.pt \(fold 1\)"):
        write_pseudo_labels(
            PseudoSpec(TTASpec(), gpu=0), tiny_dataset.data_dir, every, thresholds, 0, tmp_path / "out"
        )
    assert not (tmp_path / "out").exists()


def test_a_fold_whose_networks_all_learnt_nothing_labels_nothing(
    tiny_dataset, weights_by_fold: dict[int, list[Path]], tmp_path: Path
) -> None:
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"threshold": 0.5, "left_out": ["unet1024/fold1"]}))
    with pytest.raises(ValueError, match="leaves out every network given"):
        write_pseudo_labels(
            PseudoSpec(TTASpec(), gpu=0),
            tiny_dataset.data_dir,
            weights_by_fold[1],
            thresholds,
            1,
            tmp_path / "out",
        )
    assert not (tmp_path / "out" / LABELS_TABLE).exists()


def test_the_uncertain_share_worked_out_by_hand() -> None:
    probability = np.array([[0.1, 0.45], [0.55, 0.9]], dtype=np.float32)
    # within 0.2 of 0.5: 0.45 and 0.55; the mask (>= 0.5): 0.55 and 0.9
    assert uncertain_share(probability, 0.5, 0.2) == 1.0
    # within 0.45 of 0.5: all four, over the same two
    assert uncertain_share(probability, 0.5, 0.45) == 2.0
    # an empty mask: over one pixel
    assert uncertain_share(np.full((2, 2), 0.4, np.float32), 0.5, 0.2) == 4.0


def test_a_band_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="band"):
        PseudoSpec(TTASpec(), band=1.0)


def test_a_fold_left_with_networks_of_weight_0_says_which_were_left_out(
    tiny_dataset, weights_by_fold: dict[int, list[Path]], tmp_path: Path
) -> None:
    """Tuning gave unet1024 everything and left out its fold-0 network: unet11 alone is kept,
    at weight 0."""
    thresholds = tmp_path / "thresholds.json"
    tuned = {"threshold": 0.5, "weights": {"unet1024": 1.0, "unet11": 0.0}, "left_out": ["unet1024/fold0"]}
    thresholds.write_text(json.dumps(tuned))
    spec = PseudoSpec(TTASpec(), gpu=0)
    with pytest.raises(ValueError, match=r"weighs every network kept here at 0.*left out \(unet1024/fold0\)"):
        write_pseudo_labels(spec, tiny_dataset.data_dir, weights_by_fold[0], thresholds, 0, tmp_path / "out")


def test_two_shards_gathered_hold_the_labels_of_one_shard_each_mask_in_its_shards_folder(
    tiny_dataset, weights_by_fold: dict[int, list[Path]], tmp_path: Path
) -> None:
    tta = TTASpec()
    weights = weights_by_fold[0]
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"threshold": _median_threshold(tiny_dataset.data_dir, weights, tta)}))
    spec = PseudoSpec(tta, batch_size=4, gpu=0)
    data_dir = tiny_dataset.data_dir
    whole = write_pseudo_labels(spec, data_dir, weights, thresholds, 0, tmp_path / "one/shard_1-of-1")
    fold_dir = tmp_path / "fold0"
    shard_dirs = [fold_dir / f"shard_{index}-of-2" for index in (1, 2)]
    halves = [
        write_pseudo_labels(spec, data_dir, weights, thresholds, 0, folder, (index, 2))
        for index, folder in enumerate(shard_dirs, 1)
    ]
    assert [len(half) for half in halves] == [16, 16]  # the 32 test images, in two slices
    sample_path = DatasetPaths(data_dir).sample_submission_path
    table = gather_labels(shard_dirs, sample_path, fold_dir / LABELS_TABLE)
    assert table["img"].tolist() == whole["img"].tolist() == pd.read_csv(sample_path)["img"].tolist()
    assert table["area"].tolist() == whole["area"].tolist()
    assert table["area"].nunique() > 5  # masks of substance
    first = set(halves[0]["img"])
    for img, mask in zip(table["img"], table["mask"], strict=True):
        shard = "shard_1-of-2" if img in first else "shard_2-of-2"
        assert mask == f"{shard}/{img.replace('.jpg', '.png')}"
        assert np.array_equal(
            read_mask(fold_dir / mask), read_mask(tmp_path / "one/shard_1-of-1" / mask.split("/")[1])
        )
    assert pd.read_csv(fold_dir / LABELS_TABLE)["mask"].tolist() == table["mask"].tolist()
    with pytest.raises(ValueError, match=r"16 distinct of 32 test images \(16 missing, 0 repeated\)"):
        gather_labels(shard_dirs[:1], sample_path, tmp_path / "half.csv")
    assert not (tmp_path / "half.csv").exists()


def test_a_shard_cut_short_leaves_no_folder_and_its_rerun_makes_it_whole(
    tiny_dataset, weights_by_fold: dict[int, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"threshold": 0.5}))
    spec = PseudoSpec(TTASpec(), batch_size=2, gpu=0)
    shard_dir = tmp_path / "fold0/shard_2-of-2"
    written = []
    write_label = pseudo_module.write_label

    def failing(path: Path, mask: np.ndarray) -> None:  # the disk fills at the sixth mask
        if len(written) == 5:
            raise OSError("disk full")
        written.append(path)
        write_label(path, mask)

    monkeypatch.setattr(pseudo_module, "write_label", failing)
    with pytest.raises(OSError, match="disk full"):
        write_pseudo_labels(spec, tiny_dataset.data_dir, weights_by_fold[0], thresholds, 0, shard_dir, (2, 2))
    assert len(written) == 5 and not shard_dir.exists()
    assert list((tmp_path / "fold0").iterdir()) == []  # nor a half-written temporary
    monkeypatch.undo()
    table = write_pseudo_labels(
        spec, tiny_dataset.data_dir, weights_by_fold[0], thresholds, 0, shard_dir, (2, 2)
    )
    assert len(table) == 16 and len(list(shard_dir.glob("*.png"))) == 16
