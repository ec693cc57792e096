"""Out-of-fold maps: one training job's held-out images through the prediction stage's own path.

A trained network (``weights.pt`` of model ``m`` on fold ``k``) is loaded as prediction loads
it (BatchNorms folded, channels-last, prediction's precision) and run, as an ensemble of one, on
the images fold ``k`` held out. Two maps of each image are written at the image's own size, as
uint8 PNG (p x 255):

    oof/<img>.png         with the configured TTA, as the test images are predicted: tuning
                          fits the threshold and the ensemble's weights to these
    oof_plain/<img>.png   the image alone (no flips, scale 1): the ablation's "without TTA"
    oof_dice.csv          img, car_id, dice (the TTA map at 0.5), dice_plain (the plain one)

So a TTA change reruns these maps, tuning and prediction, never training. Where the TTA is the
image alone, both folders hold the same maps, made once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from carvana import schema
from carvana.atomic import atomic_path
from carvana.data.images import read_mask
from carvana.folds import fold_images
from carvana.layout import DatasetPaths, car_of
from carvana.metrics import dice
from carvana.models.inference import mixed_precision_dtype
from carvana.prediction.ensemble import Ensemble, Member, Prepared, load_member, opencv_threads
from carvana.prediction.stream import stream_maps
from carvana.prediction.tta import TTASpec

DICE_THRESHOLD = 0.5  # for oof_dice.csv; the tuning stage searches its own
PLAIN = TTASpec(hflip=False, vflip=False, scales=(1.0,))
ONE_IMAGE = "turn a flip off or lower predict.tta.scales (an image's views go through together)"


@dataclass(frozen=True)
class OofPaths:
    data_dir: Path
    folds_path: Path
    run_dir: Path  # <models>/<model>/fold<k>: the training job's folder

    @property
    def weights_path(self) -> Path:
        return self.run_dir / "weights.pt"

    @property
    def oof_dir(self) -> Path:
        return self.run_dir / "oof"

    @property
    def plain_dir(self) -> Path:
        return self.run_dir / "oof_plain"

    @property
    def dice_path(self) -> Path:
        return self.run_dir / "oof_dice.csv"


def oof_name(img: str) -> str:
    """``<carid>_<NN>.png`` for the image ``<carid>_<NN>.jpg``."""
    return img.removesuffix(".jpg") + ".png"


def write_oof(
    paths: OofPaths,
    tta: TTASpec,
    batch_size: int = schema.default("predict.batch_size"),
    gpu: int = schema.default("predict.gpu"),
    workers: int = schema.default("predict.workers"),
) -> pd.DataFrame:
    """Load the job's network as prediction does and write its OOF maps and Dice; return the
    Dice table (img, car_id, dice, dice_plain). ``workers``: loader processes, as prediction's."""
    device = torch.device("cuda" if gpu > 0 and torch.cuda.is_available() else "cpu")
    opencv_threads(device)
    member = load_member(paths.weights_path, device)
    return oof_maps(member, paths, tta, batch_size, device, workers)


def oof_maps(
    member: Member, paths: OofPaths, tta: TTASpec, batch_size: int, device: torch.device, workers: int = 0
) -> pd.DataFrame:
    """``member``'s maps of the images its fold held out, with ``tta`` and alone, and their Dice at
    0.5; each folder appears under its name only once whole. The images stream through the
    prediction shard's path (``stream_maps``): the next batch decoded while the network runs,
    the last one's maps resized, scored and written as PNGs in a thread."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    held_out = fold_images(paths.folds_path, member.fold).held_out  # a fold that is there holds images
    dataset = DatasetPaths(paths.data_dir)
    autocast = mixed_precision_dtype(device)
    plain = Ensemble([member], PLAIN, device, autocast)
    same = tta.views() == ["identity"] and tta.scales == (1.0,)
    both = TtaAndPlain(plain if same else Ensemble([member], tta, device, autocast), None if same else plain)
    what = f"OOF maps of {member.spec.name} fold {member.fold}"
    started = time.perf_counter()
    rows = []
    with atomic_path(paths.oof_dir) as oof_dir, atomic_path(paths.plain_dir) as plain_dir:
        oof_dir.mkdir()
        plain_dir.mkdir()

        def write(name: str, maps: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]) -> None:
            truth = read_mask(dataset.mask_path(name))
            scores = [
                write_map(folder / oof_name(name), probability, truth)
                for folder, probability in zip((oof_dir, plain_dir), maps, strict=True)
            ]
            rows.append((name, car_of(name), *scores))

        stream_maps(both, dataset, held_out, batch_size, write, what, workers, split="train")
    table = pd.DataFrame(rows, columns=["img", "car_id", "dice", "dice_plain"])
    with atomic_path(paths.dice_path) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6f")
    seconds = time.perf_counter() - started
    print(
        f"{member.spec.name} fold {member.fold}: OOF Dice {table['dice'].mean():.5f} with TTA "
        f"({' '.join(tta.views())} x scales {list(tta.scales)}), {table['dice_plain'].mean():.5f} "
        f"without, on {len(table)} held-out images at their own size in {seconds:.1f} s",
        flush=True,
    )
    return table


class TtaAndPlain:
    """One network's maps of a batch with the configured TTA and without, from one decode of each
    image: a predictor for ``stream_maps`` whose output per image is (with TTA, plain). Without
    ``plain`` (the TTA is the image alone), both are the one map."""

    def __init__(self, augmented: Ensemble, plain: Ensemble | None):
        self.augmented, self.plain = augmented, plain
        self.device = augmented.device

    def prepare(self, images: list[npt.NDArray[np.uint8]]) -> Prepared:
        prepared = self.augmented.prepare(images)
        inputs = {("tta", *key): batch for key, batch in prepared.inputs.items()}
        if self.plain is not None:
            inputs |= {("plain", *key): batch for key, batch in self.plain.prepare(images).inputs.items()}
        return Prepared(prepared.sizes, inputs)

    def forward(self, prepared: Prepared) -> list[npt.NDArray[np.float32]]:
        """The TTA ensemble's maps, then the plain one's."""
        maps = self.augmented.forward(_part(prepared, "tta"))
        return maps + (self.plain.forward(_part(prepared, "plain")) if self.plain is not None else [])

    def finish(
        self, sizes: list[tuple[int, int]], maps: list[npt.NDArray[np.float32]]
    ) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
        runs = len(self.augmented.runs())
        with_tta = self.augmented.finish(sizes, maps[:runs])
        alone = self.plain.finish(sizes, maps[runs:]) if self.plain is not None else with_tta
        return list(zip(with_tta, alone, strict=True))


def _part(prepared: Prepared, which: str) -> Prepared:
    """The inputs of ``prepared`` that ``TtaAndPlain.prepare`` keyed under ``which``."""
    return Prepared(
        prepared.sizes, {key[1:]: batch for key, batch in prepared.inputs.items() if key[0] == which}
    )


def write_map(path: Path, probability: npt.NDArray[np.float32], truth: npt.NDArray[np.uint8]) -> float:
    """Write ``probability`` (H, W) as uint8 PNG; return the Dice of the map as read back at 0.5."""
    encoded = np.round(np.clip(probability, 0, 1) * 255).astype(np.uint8)
    if not cv2.imwrite(str(path), encoded):
        raise OSError(f"could not write {path}")
    return dice(encoded / 255 >= DICE_THRESHOLD, truth)
