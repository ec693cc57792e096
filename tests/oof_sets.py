"""Hand-made OOF sets for the tuning tests: masks and every network's maps on disk, laid out as
the OOF stage writes them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from carvana import rle
from carvana.tuning.oof_set import TunePaths

IMAGES = {
    "aaaaaaaaaaaa_01.jpg": 0,
    "aaaaaaaaaaaa_02.jpg": 0,
    "bbbbbbbbbbbb_01.jpg": 1,
    "bbbbbbbbbbbb_02.jpg": 1,
}


def oof_set(
    tmp_path: Path, maps: dict[str, dict[str, np.ndarray]], truth: dict[str, np.ndarray]
) -> TunePaths:
    """``maps[model][img]`` as every network's OOF map (with TTA and without), ``truth[img]`` as
    the mask; images in two folds of two."""
    data_dir, models_dir = tmp_path / "data", tmp_path / "models"
    data_dir.mkdir()
    pd.DataFrame({"img": list(IMAGES), "rle_mask": [rle.encode(truth[img]) for img in IMAGES]}).to_csv(
        data_dir / "train_masks.csv", index=False
    )
    folds_path = tmp_path / "folds.csv"
    pd.DataFrame(
        {"img": list(IMAGES), "car_id": [i[:12] for i in IMAGES], "fold": list(IMAGES.values())}
    ).to_csv(folds_path, index=False)
    for model, by_image in maps.items():
        for img, fold in IMAGES.items():
            for folder in ("oof", "oof_plain"):
                path = models_dir / model / f"fold{fold}" / folder / img.replace(".jpg", ".png")
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), by_image[img])
    return TunePaths(data_dir, folds_path, models_dir, tmp_path / "tuning")
