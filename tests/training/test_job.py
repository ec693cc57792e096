"""One training job on the tiny dataset: outputs, its OOF maps (the OOF stage on its weights),
resume after a kill, restart on change."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from carvana.cli import main
from carvana.models.build import build_model
from carvana.models.spec import ModelSpec
from carvana.prediction.oof import OofPaths
from carvana.training.job import TrainPaths, train
from hand_masks import decode, dice

pytestmark = pytest.mark.slow  # trains a network

TINY_UNET1024 = {
    "arch": "unet1024",
    "width": 0.125,
    "input_size": [64, 64],
    "epochs": 2,
    "batch_size": 4,
    "optimizer": {"name": "adam", "lr": 0.003},
    "gpu": 0,
}


@pytest.fixture(scope="module")
def trained(tiny_dataset, folds_path: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainPaths:
    paths = TrainPaths(tiny_dataset.data_dir, folds_path, tmp_path_factory.mktemp("run") / "fold1")
    train(ModelSpec.from_entry("tiny", TINY_UNET1024), 1, paths)
    return paths


@pytest.fixture(scope="module")
def oof(trained: TrainPaths) -> OofPaths:
    """The OOF stage on the trained job's weights, as its rule calls it: horizontal-flip TTA,
    batches of 5."""
    paths = OofPaths(trained.data_dir, trained.folds_path, trained.run_dir)
    args = ["--data-dir", str(trained.data_dir), "--folds-path", str(trained.folds_path)]
    args += ["--run-dir", str(trained.run_dir), "--hflip", "--no-vflip", "--scales", "1.0"]
    assert main(["oof", *args, "--batch-size", "5", "--gpu", "0", "--threads", "1"]) == 0
    return paths


def test_oof_maps_cover_exactly_the_held_out_fold_at_the_images_size(
    oof: OofPaths, folds_path: Path, tiny_dataset
) -> None:
    folds = pd.read_csv(folds_path)
    held_out = sorted(folds.loc[folds["fold"] == 1, "img"])
    assert len(held_out) == 16  # one of the three cars
    for folder in (oof.oof_dir, oof.plain_dir):
        assert sorted(p.name for p in folder.iterdir()) == [name.replace(".jpg", ".png") for name in held_out]
    table = pd.read_csv(oof.dice_path)
    assert sorted(table["img"]) == held_out
    assert list(table.columns) == ["img", "car_id", "dice", "dice_plain"]
    probability = cv2.imread(str(oof.oof_dir / held_out[0].replace(".jpg", ".png")), cv2.IMREAD_UNCHANGED)
    assert (
        probability.dtype == np.uint8 and probability.shape == tiny_dataset.spec.image_size
    )  # 64x96, not 64x64


def test_the_flipped_view_changes_the_maps(oof: OofPaths) -> None:
    """With TTA the maps are the mean of two views: a trained network is not mirror-symmetric, so
    they differ from the plain maps somewhere, and by less than the whole range."""
    differences = []
    for path in sorted(oof.oof_dir.iterdir()):
        with_tta = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(int)
        alone = cv2.imread(str(oof.plain_dir / path.name), cv2.IMREAD_UNCHANGED).astype(int)
        differences.append(np.abs(with_tta - alone))
    largest = max(int(d.max()) for d in differences)
    assert 0 < largest < 255


def test_oof_dice_beats_calling_every_pixel_car_or_background(oof: OofPaths, tiny_dataset) -> None:
    """The table's Dice is the maps' Dice at 0.5 against train_masks.csv, both worked out here, and
    it beats the trivial answers by a margin that a transposed map, or one of noise, would not."""
    height, width = tiny_dataset.spec.image_size
    truth_rle = pd.read_csv(tiny_dataset.data_dir / "train_masks.csv").set_index("img")["rle_mask"]
    table = pd.read_csv(oof.dice_path).set_index("img")
    ours, plain, all_car, all_background = [], [], [], []
    for img in table.index:
        truth = decode(truth_rle[img], height, width)
        assert truth.any() and not truth.all(), (
            f"degenerate fixture: {img}'s mask must hold car and background"
        )
        probability = cv2.imread(str(oof.oof_dir / img.replace(".jpg", ".png")), cv2.IMREAD_UNCHANGED)
        ours.append(dice(probability / 255 >= 0.5, truth))
        alone = cv2.imread(str(oof.plain_dir / img.replace(".jpg", ".png")), cv2.IMREAD_UNCHANGED)
        plain.append(dice(alone / 255 >= 0.5, truth))
        all_car.append(2 * truth.sum() / (truth.sum() + truth.size))
        all_background.append(0.0)  # no pixel in common with a mask that has a car
    np.testing.assert_allclose(table["dice"], ours, atol=1e-5)
    np.testing.assert_allclose(table["dice_plain"], plain, atol=1e-5)
    # Measured on this fixture (the held-out car covers 27% of each view): the maps score 0.71,
    # every pixel car 0.43, every pixel background 0, the same maps laid out column-major (a
    # transposed map) 0.36, shifted 10 pixels sideways 0.66. A margin of 0.15 over the better
    # trivial answer leaves the training room to vary and none for a transposed map.
    assert np.mean(ours) >= max(np.mean(all_car), np.mean(all_background)) + 0.15
    assert np.mean(plain) >= max(np.mean(all_car), np.mean(all_background)) + 0.15


def test_weights_metrics_and_logs_are_written(trained: TrainPaths) -> None:
    saved = torch.load(trained.weights_path, weights_only=False)
    assert ModelSpec.from_json(saved["spec"]).name == "tiny"
    assert saved["fold"] == 1 and saved["epoch"] in (1, 2)
    metrics = pd.read_csv(trained.metrics_path)
    assert metrics["epoch"].tolist() == [1, 2]
    assert list(metrics.columns) == ["epoch", "train_loss", "val_loss", "val_dice", "lr"]
    assert metrics[["train_loss", "val_loss", "val_dice", "lr"]].notna().all().all()
    # last.ckpt is the last epoch's, whether or not it beat the best
    last = torch.load(trained.checkpoint_dir / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 1 and last["global_step"] == 2 * 8  # 0-based; 32 images in batches of 4
    assert list((trained.log_dir / "tensorboard").rglob("events.out.tfevents.*"))


def _copy_of(trained: TrainPaths, tmp_path: Path) -> TrainPaths:
    """A private copy of the finished job, checkpoints included, to train again."""
    import shutil

    shutil.copytree(trained.run_dir, tmp_path / "fold1")
    return TrainPaths(trained.data_dir, trained.folds_path, tmp_path / "fold1")


def test_rerun_after_a_change_starts_afresh(
    trained: TrainPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _copy_of(trained, tmp_path)
    run_dir = paths.run_dir
    train(ModelSpec.from_entry("tiny", {**TINY_UNET1024, "epochs": 1}), 1, paths)
    assert "starting afresh" in capsys.readouterr().out
    assert pd.read_csv(paths.metrics_path)["epoch"].tolist() == [1]  # not 1, 2 from the old run
    assert not (run_dir / "logs" / "csv" / "version_1").exists()


def test_a_checkpoint_of_other_training_code_is_not_resumed(
    trained: TrainPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _copy_of(trained, tmp_path)
    spec = ModelSpec.from_entry("tiny", TINY_UNET1024)
    epochs = pd.read_csv(trained.metrics_path)["epoch"].tolist()
    # the same spec, fold and data, trained by edited code: its last.ckpt is finished, but stale
    train(spec, 1, paths, code="digest-of-edited-code")
    assert "starting afresh" in capsys.readouterr().out
    assert pd.read_csv(paths.metrics_path)["epoch"].tolist() == epochs == list(range(1, spec.epochs + 1))


def test_how_a_job_runs_is_no_reason_to_start_afresh(
    trained: TrainPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More threads and loader processes and a compiled network: the finished checkpoint is
    resumed (no epoch trained again), the network is compiled once, and weights.pt keeps the
    plain parameter names an uncompiled network loads."""
    compiled: list[dict[str, object]] = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **options: compiled.append(options))
    paths = _copy_of(trained, tmp_path)
    spec = ModelSpec.from_entry("tiny", {**TINY_UNET1024, "threads": 2, "workers": 1, "compile": True})
    train(spec, 1, paths)
    out = capsys.readouterr().out
    assert "resuming from" in out and "starting afresh" not in out and "compiled" in out
    assert compiled == [{"dynamic": False}]
    assert pd.read_csv(paths.metrics_path)["epoch"].tolist() == [1, 2]
    assert not (paths.log_dir / "csv" / "version_1" / "metrics.csv").exists()  # no epoch trained again
    saved = torch.load(paths.weights_path, weights_only=False)
    fresh = build_model(ModelSpec.from_entry("tiny", TINY_UNET1024), load_pretrained=False)
    fresh.load_state_dict(saved["state_dict"])  # strict: every name as the plain network has it


# The training CLI, run with os.replace wrapped (carvana.atomic puts every file in place with it):
# the first SAVED renames onto last.ckpt go through; at the next, the job writes the ``ready``
# file and waits, its checkpoint whole beside last.ckpt but not renamed, until the test kills it.
# So the kill lands inside a save, at a known epoch, however slow the machine.
HOLDS_A_CHECKPOINT = """
import os
import sys
import time
from pathlib import Path

from carvana.cli import main

saved, ready, *args = sys.argv[1:]
replace = os.replace
renamed = []


def replace_unless_held(src, dst, **fds):
    if Path(os.fsdecode(dst)).name == "last.ckpt":
        if len(renamed) == int(saved):
            Path(ready).write_text(os.fsdecode(src))
            time.sleep(3600)  # until killed
        renamed.append(dst)
    replace(src, dst, **fds)


os.replace = replace_unless_held
raise SystemExit(main(args))
"""
SAVED = 2  # last.ckpt renames that land before the held one: one per epoch


def test_a_job_killed_while_saving_resumes_at_the_epoch_after_its_last_checkpoint(
    tiny_dataset, folds_path: Path, tmp_path: Path
) -> None:
    spec = ModelSpec.from_entry("tiny", {**TINY_UNET1024, "epochs": 4})
    paths = TrainPaths(tiny_dataset.data_dir, folds_path, tmp_path / "fold0")
    wrapper, ready, log = tmp_path / "holds_a_checkpoint.py", tmp_path / "ready", tmp_path / "job.log"
    wrapper.write_text(HOLDS_A_CHECKPOINT)
    command = [sys.executable, str(wrapper), str(SAVED), str(ready), "train", "--model", "tiny"]
    command += ["--fold", "0", "--model-json", spec.to_json(), "--data-dir", str(paths.data_dir)]
    command += ["--folds-path", str(folds_path), "--run-dir", str(paths.run_dir)]
    with log.open("w") as output:  # a file, not a pipe: a pipe nobody reads would stall the job
        job = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600  # a bound on a hung job, not a window the kill must hit
        while not ready.is_file() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.is_file(), f"the job never began its third save: {log.read_text()[-3000:]}"
        os.kill(job.pid, signal.SIGKILL)
    finally:
        if job.poll() is None:
            job.kill()
        job.wait(timeout=60)
    assert job.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert not paths.weights_path.exists()
    held = Path(ready.read_text())
    assert held.parent == paths.checkpoint_dir and held.name != "last.ckpt"
    assert int(torch.load(held, map_location="cpu", weights_only=False)["epoch"]) == SAVED  # 0-based
    # the save cut short left the previous last.ckpt whole: the second epoch's (0-based 1)
    last = paths.checkpoint_dir / "last.ckpt"
    assert int(torch.load(last, map_location="cpu", weights_only=False)["epoch"]) == SAVED - 1

    train(spec, 0, paths)
    resumed = pd.read_csv(paths.log_dir / "csv" / "version_1" / "metrics.csv")
    assert int(resumed["epoch"].min()) == SAVED  # the epoch after the last checkpoint, not the first
    assert pd.read_csv(paths.metrics_path)["epoch"].tolist() == [1, 2, 3, 4]


def test_held_out_images_scored_every_second_epoch_two_steps_each_and_a_checkpoint_every_epoch(
    tiny_dataset, folds_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate_every 2 of 4 epochs: the held-out Dice of epochs 2 and 4 alone, weights.pt from
    one of them, and last.ckpt written at the end of each of the 4 epochs (a kill loses one).
    steps_per_epoch 2: two batches of the fold's training images per epoch, eight in all, and two
    batches of its held-out images at each scoring (the first 8 of 16)."""
    import lightning.pytorch.callbacks.model_checkpoint as model_checkpoint

    from carvana.training.task import SegmentationTask

    saved: list[str] = []
    save = model_checkpoint.ModelCheckpoint._save_checkpoint

    def counting(self: object, trainer: object, filepath: str) -> None:
        saved.append(Path(filepath).name)
        save(self, trainer, filepath)  # type: ignore[arg-type]

    steps: list[int] = []
    step = SegmentationTask.training_step

    def counting_steps(
        self: SegmentationTask, batch: tuple[torch.Tensor, torch.Tensor], index: int
    ) -> torch.Tensor:
        steps.append(index)
        return step(self, batch, index)

    scored: list[int] = []
    validate = SegmentationTask.validation_step

    def counting_scored(self: SegmentationTask, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> None:
        scored.append(len(batch[0]))
        validate(self, batch, index)

    monkeypatch.setattr(model_checkpoint.ModelCheckpoint, "_save_checkpoint", counting)
    monkeypatch.setattr(SegmentationTask, "training_step", counting_steps)
    monkeypatch.setattr(SegmentationTask, "validation_step", counting_scored)
    entry = {**TINY_UNET1024, "epochs": 4, "validate_every": 2, "steps_per_epoch": 2}
    spec = ModelSpec.from_entry("tiny", entry)
    paths = TrainPaths(tiny_dataset.data_dir, folds_path, tmp_path / "fold0")
    summary = train(spec, 0, paths)
    metrics = pd.read_csv(paths.metrics_path)
    assert metrics["epoch"].tolist() == [1, 2, 3, 4]
    assert metrics["val_dice"].notna().tolist() == [False, True, False, True]
    assert metrics["train_loss"].notna().all()
    assert summary["best_epoch"] in (2, 4)
    assert torch.load(paths.weights_path, weights_only=False)["epoch"] == summary["best_epoch"]
    assert saved.count("last.ckpt") == 4 and 1 <= saved.count("best.ckpt") <= 2
    assert steps == [0, 1] * 4  # the fold has more than 2 batches: len(images.train) // 4 > 2
    assert scored == [4, 4] * 2  # two batches of 4 at epochs 2 and 4, of the 16 held out
    assert (summary["held_out"], summary["scored"]) == (16, 8)
