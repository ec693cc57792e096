"""One training job: model ``spec`` on fold ``fold``, resumable.

The job's folder (``run_dir``) holds::

    weights.pt        best weights by held-out Dice, with the spec (what prediction loads)
    metrics.csv       one row per epoch: epoch, train_loss, val_loss, val_dice, lr
    checkpoints/      last.ckpt (every epoch) and best.ckpt
    fingerprint       what the checkpoints were trained on
    logs/             Lightning's CSV and TensorBoard logs (held-out predictions drawn per epoch)

Lightning writes ``last.ckpt`` every epoch and the job resumes from it, so a killed job loses at
most one epoch. A checkpoint is only resumed when its fingerprint (the spec less the keys that only
say how the job runs, the fold's images, the training masks and the training code's digest)
matches; otherwise training starts afresh.
The workflow declares only the first two as outputs: Snakemake deletes a job's outputs before
running it again, and the checkpoints must survive that. The out-of-fold maps are a stage of
their own (``carvana.prediction.oof``), made from weights.pt the way prediction runs it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import pandas as pd
import torch

from carvana.atomic import atomic_path, write_text
from carvana.failures import out_of_memory_advice
from carvana.folds import FoldImages, fold_images
from carvana.layout import DatasetPaths
from carvana.models.inference import cpu_has_fast_bf16, mixed_precision_dtype
from carvana.models.spec import ModelSpec
from carvana.pseudo import LABELS_TABLE, RoundTraining
from carvana.training.data import MixSampler, PseudoLabels, SegmentationDataset


@dataclass(frozen=True)
class TrainPaths:
    data_dir: Path
    folds_path: Path
    run_dir: Path

    @property
    def weights_path(self) -> Path:
        return self.run_dir / "weights.pt"

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.csv"

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"


@dataclass(frozen=True)
class Device:
    """Where the job runs: Lightning's accelerator and device count, and the precision it uses."""

    accelerator: str
    devices: int
    precision: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(self.precision)

    @property
    def torch_device(self) -> torch.device:
        return torch.device("cuda" if self.accelerator == "gpu" else "cpu")


def choose_device(spec: ModelSpec) -> Device:
    """GPUs when the model asks for them and CUDA has them, else the CPU. ``precision: auto`` is
    bf16 where the GPU supports it, else fp16; on a CPU bf16 where it is computed in hardware
    (about 2x faster than float32 there), else float32 (emulated bf16 is several times slower)."""
    if spec.gpu > 0 and torch.cuda.is_available():
        available = torch.cuda.device_count()
        if spec.gpu > available:
            print(
                f"warning: model {spec.name!r} asks for {spec.gpu} GPUs, {available} visible; "
                f"using {available}"
            )
        precision = spec.precision
        if precision == "auto":
            auto = mixed_precision_dtype(torch.device("cuda"))
            precision = "bf16-mixed" if auto == torch.bfloat16 else "16-mixed"
        return Device("gpu", min(spec.gpu, available), precision)
    if spec.precision == "16-mixed":
        raise ValueError(
            f"model {spec.name!r}: precision 16-mixed needs a GPU; use bf16-mixed or 32-true on a CPU"
        )
    if spec.precision == "auto":
        return Device("cpu", 1, "bf16-mixed" if cpu_has_fast_bf16() else "32-true")
    return Device("cpu", 1, spec.precision)


def fingerprint(
    spec: ModelSpec,
    fold: FoldImages,
    paths: DatasetPaths,
    code: str = "",
    pseudo: RoundTraining | None = None,
) -> str:
    """What a checkpoint was trained on: the spec, the fold's split, the training masks, the
    training code's digest (``carvana.stage_code``; the workflow passes it) and, in a
    pseudo-labelling round, its labels' table, how it takes them and the weights it starts from."""
    digest = hashlib.sha256()
    digest.update(code.encode())
    digest.update(spec.recipe_json().encode())  # more workers or a compiled network: still resumable
    digest.update(json.dumps([fold.fold, fold.train, fold.held_out]).encode())
    digest.update(paths.train_masks_csv_path.read_bytes())
    if pseudo is not None:
        digest.update(json.dumps([pseudo.share, pseudo.select, pseudo.ratio]).encode())
        digest.update((pseudo.labels_dir / LABELS_TABLE).read_bytes())
        if pseudo.init_weights is not None:
            digest.update(pseudo.init_weights.read_bytes())
    return digest.hexdigest()


def _atomic_checkpoints() -> Any:
    """Lightning's checkpoint writer, writing beside the target and renaming: a job killed while
    saving leaves the previous ``last.ckpt`` whole (Lightning's own writer truncates it first)."""
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(
            self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
        ) -> None:
            with atomic_path(path) as temporary:
                super().save_checkpoint(checkpoint, temporary, storage_options)

    return AtomicCheckpointIO()


def train(
    spec: ModelSpec, fold: int, paths: TrainPaths, code: str = "", pseudo: RoundTraining | None = None
) -> dict[str, Any]:
    """Train (or resume), write the best weights and the metrics; return a summary.
    ``code``: the digest of the training code; a checkpoint made by other code is not resumed.
    ``pseudo``: a pseudo-labelling round's test images, beside the fold's training images."""
    cv2.setNumThreads(1)  # once, in the parent, before any DataLoader worker forks
    import lightning as L  # noqa: N812
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from torch.utils.data import DataLoader

    from carvana.training.task import SegmentationTask

    dataset = DatasetPaths(paths.data_dir)
    images = fold_images(paths.folds_path, fold)
    device = choose_device(spec)
    torch.set_num_threads(spec.threads)
    if device.accelerator == "gpu":
        torch.set_float32_matmul_precision("high")  # TF32 for what autocast leaves in float32
    labels, sampler = None, None
    if pseudo is not None:
        chosen = pseudo.chosen(spec.seed + fold)
        labels = PseudoLabels([img for img, _ in chosen], [mask for _, mask in chosen])
        per_epoch = pseudo.per_epoch(len(images.train))
        sampler = MixSampler(len(images.train), len(labels.images), per_epoch, spec.seed + fold)
    print(
        f"training {spec.name} ({spec.arch}) fold {fold}: {len(images.train)} images, "
        f"{len(images.held_out)} held out; {device.accelerator} x{device.devices}, {device.precision}, "
        f"{spec.epochs} epochs of batch {spec.batch_size}{', compiled' if spec.compile else ''}",
        flush=True,
    )
    if pseudo is not None and sampler is not None:
        start = f"from {pseudo.init_weights}" if pseudo.init_weights else "from scratch"
        print(
            f"pseudo labels: {sampler.pseudo} test images ({pseudo.select}, share "
            f"{pseudo.share:g}) from {pseudo.labels_dir}, {sampler.per_epoch} per epoch; {start}",
            flush=True,
        )
    last = _resumable_checkpoint(paths, fingerprint(spec, images, dataset, code, pseudo))
    L.seed_everything(spec.seed + fold, workers=True, verbose=False)

    def loader(
        items: SegmentationDataset, drawn_by: MixSampler | None = None
    ) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
        """Training items shuffled (or drawn by a round's sampler); held-out ones in order."""
        drawn = len(drawn_by) if drawn_by is not None else len(items)
        return DataLoader(
            items,
            batch_size=spec.batch_size,
            shuffle=items.train and drawn_by is None,
            sampler=drawn_by,
            drop_last=items.train and drawn > spec.batch_size,  # no batch of one through BatchNorm
            num_workers=spec.workers,
            persistent_workers=spec.workers > 0,
            pin_memory=device.accelerator == "gpu",
        )

    checkpoints = ModelCheckpoint(
        dirpath=paths.checkpoint_dir,
        filename="best",
        monitor="val_dice",
        mode="max",
        save_top_k=1,
        enable_version_counter=False,
    )
    # its own callback: save_last=True above writes last.ckpt only in an epoch that beats the
    # best, so a killed job would go back to its best epoch, not its last
    every_epoch = ModelCheckpoint(  # at every epoch's end, scored or not
        dirpath=paths.checkpoint_dir,
        filename="last",
        save_top_k=1,
        enable_version_counter=False,
        save_on_train_epoch_end=True,
    )
    steps = max(1, (len(sampler) if sampler else len(images.train)) // spec.batch_size)
    if spec.steps_per_epoch is not None:
        steps = min(steps, spec.steps_per_epoch)
    trainer = L.Trainer(
        max_epochs=spec.epochs,
        check_val_every_n_epoch=spec.validate_every,
        limit_train_batches=spec.steps_per_epoch or 1.0,
        limit_val_batches=spec.steps_per_epoch or 1.0,  # a quick run scores a few; OOF scores all
        accelerator=device.accelerator,
        devices=device.devices,
        precision=device.precision,  # type: ignore[arg-type]
        logger=[CSVLogger(paths.log_dir, name="csv"), TensorBoardLogger(paths.log_dir, name="tensorboard")],
        callbacks=[
            checkpoints,
            every_epoch,
            TQDMProgressBar(refresh_rate=1 if sys.stderr.isatty() else max(1, steps // 4)),
        ],
        log_every_n_steps=max(1, min(50, steps)),
        num_sanity_val_steps=0,
        plugins=[_atomic_checkpoints()],
        enable_model_summary=False,
        benchmark=device.accelerator == "gpu",  # cuDNN picks its fastest kernels: the sizes are fixed
    )
    task = SegmentationTask(spec.to_json())
    if pseudo is not None and pseudo.init_weights is not None and last is None:
        _start_from(task, pseudo.init_weights)
    if spec.compile:  # in place: the weights keep their names in checkpoints and weights.pt
        task.network.compile(dynamic=False)
    with _out_of_memory_advice(spec):
        trainer.fit(
            task,
            loader(SegmentationDataset(dataset, images.train, spec, train=True, pseudo=labels), sampler),
            loader(SegmentationDataset(dataset, images.held_out, spec, train=False)),
            ckpt_path=last,
        )
    if trainer.global_rank != 0:
        return {}
    best_path = Path(checkpoints.best_model_path or paths.checkpoint_dir / "best.ckpt")
    best = torch.load(best_path, map_location="cpu", weights_only=False)
    task.load_state_dict(best["state_dict"])
    network = task.network.cpu().eval()  # weights.pt loads on any machine
    best_epoch = int(best["epoch"]) + 1
    with atomic_path(paths.weights_path) as temporary:
        torch.save(
            {"spec": spec.to_json(), "fold": fold, "epoch": best_epoch, "state_dict": network.state_dict()},
            temporary,
        )
    metrics = epoch_metrics(paths.log_dir / "csv")
    with atomic_path(paths.metrics_path) as temporary:
        metrics.to_csv(temporary, index=False)
    best_dice = float(metrics.loc[metrics["epoch"] == best_epoch, "val_dice"].iloc[0])
    held_out = scored = len(images.held_out)
    if spec.steps_per_epoch is not None:  # Lightning's limit_val_batches above
        scored = min(held_out, spec.steps_per_epoch * spec.batch_size)
    summary = {"best_epoch": best_epoch, "val_dice": best_dice, "held_out": held_out, "scored": scored}
    of = "" if scored == held_out else f" (its first {scored} of {held_out})"
    print(
        f"{spec.name} fold {fold}: best epoch {best_epoch} of {spec.epochs}, held-out Dice "
        f"{best_dice:.5f} at the input size{of}",
        flush=True,
    )
    return summary


def _start_from(task: Any, weights_path: Path) -> None:
    """The network's weights from an earlier training job's weights.pt (the round before's)."""
    saved = torch.load(weights_path, map_location="cpu", weights_only=False)
    try:
        task.network.load_state_dict(saved["state_dict"])
    except RuntimeError as error:
        raise ValueError(
            f"{weights_path} is not this network's (its spec is {saved['spec']}); set pseudo.start to "
            f"scratch, or rerun the round before with this model's settings: {error}"
        ) from None


def _out_of_memory_advice(spec: ModelSpec) -> AbstractContextManager[None]:
    size = "tile_size" if spec.tile_size else "input_size"
    height, width = spec.tile_size or spec.input_size
    return out_of_memory_advice(
        f"training model {spec.name!r} ({spec.arch}, {size} {height}x{width})",
        f"models.{spec.name}.batch_size",
        spec.batch_size,
        f"lower models.{spec.name}.{size}",
    )


def _resumable_checkpoint(paths: TrainPaths, run_fingerprint: str) -> Path | None:
    """``last.ckpt`` if it was made by this very run; otherwise clear old checkpoints and logs."""
    stamp = paths.run_dir / "fingerprint"  # beside, not in, the folder Lightning checks is empty
    last = paths.checkpoint_dir / "last.ckpt"
    if stamp.is_file() and stamp.read_text().strip() == run_fingerprint:
        if last.is_file():
            print(f"resuming from {last}", flush=True)
            return last
        return None
    if paths.checkpoint_dir.exists() or paths.log_dir.exists():
        print(
            f"config, fold or data changed since the checkpoints in {paths.run_dir} were made: "
            "starting afresh"
        )
    for folder in (paths.checkpoint_dir, paths.log_dir):
        shutil.rmtree(folder, ignore_errors=True)
    write_text(stamp, run_fingerprint + "\n")
    return None


def epoch_metrics(csv_dir: Path) -> pd.DataFrame:
    """One row per epoch (from 1) from Lightning's CSV logs; a resumed run's rows win."""
    columns = ["epoch", "train_loss", "val_loss", "val_dice", "lr"]
    versions = sorted(csv_dir.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    frames = [pd.read_csv(path) for path in versions if path.stat().st_size]
    if not frames:
        return pd.DataFrame(columns=columns)
    logged = pd.concat(frames, ignore_index=True)
    logged = logged[[c for c in columns if c in logged.columns]]
    table = logged.groupby("epoch", as_index=False).last()  # last non-null value per column
    table["epoch"] = table["epoch"].astype(int) + 1
    return table.reindex(columns=columns)
