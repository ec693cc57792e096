"""One training job on the tiny dataset: outputs, OOF coverage, resume after a kill, restart on change."""

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

from carvana.folds import FoldSpec, make_folds
from carvana.layout import DatasetPaths
from carvana.models.build import build_model
from carvana.models.spec import ModelSpec
from carvana.training.job import TrainPaths, epoch_metrics, train

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
def folds_path(tiny_dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("folds") / "folds.csv"
    make_folds(DatasetPaths(tiny_dataset.data_dir), FoldSpec(n_folds=3, seed=1), path)
    return path


@pytest.fixture(scope="module")
def trained(tiny_dataset, folds_path: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainPaths:
    paths = TrainPaths(tiny_dataset.data_dir, folds_path, tmp_path_factory.mktemp("run") / "fold1")
    train(ModelSpec.from_entry("tiny", TINY_UNET1024), 1, paths)
    return paths


def test_oof_maps_cover_exactly_the_held_out_fold_at_the_images_size(
    trained: TrainPaths, folds_path: Path, tiny_dataset
) -> None:
    folds = pd.read_csv(folds_path)
    held_out = sorted(folds.loc[folds["fold"] == 1, "img"])
    assert len(held_out) == 16  # one of the three cars
    assert sorted(p.name for p in trained.oof_dir.iterdir()) == [
        name.replace(".jpg", ".png") for name in held_out
    ]
    table = pd.read_csv(trained.oof_dice_path)
    assert sorted(table["img"]) == held_out
    assert table["dice"].between(0, 1).all()
    probability = cv2.imread(str(trained.oof_dir / held_out[0].replace(".jpg", ".png")), cv2.IMREAD_UNCHANGED)
    assert (
        probability.dtype == np.uint8 and probability.shape == tiny_dataset.spec.image_size
    )  # 64x96, not 64x64


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


def test_a_killed_job_resumes_at_the_epoch_after_its_last_checkpoint(
    tiny_dataset, folds_path: Path, tmp_path: Path
) -> None:
    spec = ModelSpec.from_entry("tiny", {**TINY_UNET1024, "epochs": 12})
    paths = TrainPaths(tiny_dataset.data_dir, folds_path, tmp_path / "fold0")
    last = paths.checkpoint_dir / "last.ckpt"
    command = [sys.executable, "-m", "carvana", "train", "--model", "tiny", "--fold", "0"]
    command += ["--model-json", spec.to_json(), "--data-dir", str(paths.data_dir)]
    command += ["--folds-path", str(folds_path), "--run-dir", str(paths.run_dir)]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not last.is_file() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(job.pid, signal.SIGKILL)
    finally:
        job.wait(timeout=60)
    assert job.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    assert not paths.weights_path.exists()
    # checkpoints are renamed into place, so even a save cut short leaves last.ckpt whole
    killed_at = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"])
    assert killed_at < 11

    train(spec, 0, paths)
    resumed = pd.read_csv(paths.log_dir / "csv" / "version_1" / "metrics.csv")
    assert int(resumed["epoch"].min()) == killed_at + 1  # continued at the next epoch
    assert pd.read_csv(paths.metrics_path)["epoch"].tolist() == list(range(1, 13))


def test_epoch_metrics_take_a_resumed_runs_rows(tmp_path: Path) -> None:
    for version, rows in (
        (0, "epoch,train_loss,val_dice\n0,0.9,\n0,,0.5\n1,0.7,\n"),
        (1, "epoch,train_loss,val_dice\n1,0.6,\n1,,0.8\n"),
    ):
        folder = tmp_path / f"version_{version}"
        folder.mkdir()
        (folder / "metrics.csv").write_text(rows)
    table = epoch_metrics(tmp_path)
    assert table["epoch"].tolist() == [1, 2]
    assert table["train_loss"].tolist() == [0.9, 0.6]
    assert table["val_dice"].tolist() == [0.5, 0.8]
