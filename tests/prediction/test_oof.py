"""The OOF stage's maps with and without TTA, through stub networks whose answer is known."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from carvana.models.spec import ModelSpec
from carvana.prediction.ensemble import Member
from carvana.prediction.oof import OofPaths, oof_maps
from carvana.prediction.tta import TTASpec

SPEC = ModelSpec.from_entry(
    "stub", {"arch": "unet1024", "width": 0.125, "input_size": [64, 64], "gpu": 0, "precision": "32-true"}
)


class FirstChannel(nn.Module):
    """Logits = the input's first channel, pixel by pixel: it commutes with every flip."""

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[:, :1] * 3


class RampedFirstChannel(nn.Module):
    """The first channel plus a ramp across the width: the ramp does not commute with a flip."""

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(-4, 4, batch.shape[-1]).reshape(1, 1, 1, -1)
        return batch[:, :1] * 3 + ramp


def _maps(folder: Path) -> dict[str, np.ndarray]:
    return {path.name: cv2.imread(str(path), cv2.IMREAD_UNCHANGED) for path in sorted(folder.iterdir())}


def test_a_flip_equivariant_network_through_tta_gives_its_plain_maps(
    tiny_dataset, folds_path: Path, tmp_path: Path
) -> None:
    paths = OofPaths(tiny_dataset.data_dir, folds_path, tmp_path / "stub" / "fold2")
    member = Member(SPEC, 2, FirstChannel().eval())
    tta = TTASpec(hflip=True, vflip=True)  # four views
    table = oof_maps(member, paths, tta, batch_size=3, device=torch.device("cpu"))
    with_tta, alone = _maps(paths.oof_dir), _maps(paths.plain_dir)
    folds = pd.read_csv(folds_path)
    expected = sorted(img.replace(".jpg", ".png") for img in folds.loc[folds["fold"] == 2, "img"])
    assert list(with_tta) == list(alone) == expected
    for name, probability in with_tta.items():
        assert probability.shape == tiny_dataset.spec.image_size
        assert probability.std() > 5, f"degenerate fixture: {name}'s map is flat"
        np.testing.assert_array_equal(probability, alone[name], err_msg=name)
    np.testing.assert_array_equal(table["dice"], table["dice_plain"])


def test_a_network_that_sees_position_gets_other_maps_from_tta(
    tiny_dataset, folds_path: Path, tmp_path: Path
) -> None:
    """The twin of the test above, so that it can fail: the ramp's flipped view flips back to the
    opposite ramp, and the mean of the two views cancels it, so the TTA maps lose the ramp."""
    paths = OofPaths(tiny_dataset.data_dir, folds_path, tmp_path / "stub" / "fold0")
    member = Member(SPEC, 0, RampedFirstChannel().eval())
    oof_maps(member, paths, TTASpec(hflip=True), batch_size=4, device=torch.device("cpu"))
    with_tta, alone = _maps(paths.oof_dir), _maps(paths.plain_dir)
    for name, probability in alone.items():
        # the plain map carries the ramp: its right edge is far brighter than its left
        left, right = probability[:, :8].astype(int).mean(), probability[:, -8:].astype(int).mean()
        assert right - left > 100, name
        # averaged with its flipped view, the ramp's two ends come out alike
        tta_left, tta_right = (
            with_tta[name][:, :8].astype(int).mean(),
            with_tta[name][:, -8:].astype(int).mean(),
        )
        assert abs(tta_right - tta_left) < (right - left) / 2, name


def test_a_fold_that_holds_out_nothing_is_refused(tiny_dataset, tmp_path: Path) -> None:
    folds_path = tmp_path / "folds.csv"
    folds = pd.read_csv(tiny_dataset.data_dir / "train_masks.csv")[["img"]]
    folds.assign(car_id=folds["img"].str[:12], fold=0).to_csv(folds_path, index=False)
    paths = OofPaths(tiny_dataset.data_dir, folds_path, tmp_path / "run")
    with pytest.raises(ValueError, match="fold 1 is not in"):
        oof_maps(Member(SPEC, 1, FirstChannel()), paths, TTASpec(), 4, torch.device("cpu"))
    assert not paths.oof_dir.exists() and not paths.plain_dir.exists()
