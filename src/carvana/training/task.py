"""The Lightning module: one configured network, its loss, optimizer and validation metric.

Loss = w_bce * binary cross-entropy + w_dice * soft Dice, both from segmentation-models-pytorch.
Validation scores Dice at 0.5 per held-out image at ``input_size``, against the soft target
thresholded at a half (``val_dice``, the metric the best checkpoint is chosen by), and draws a few
held-out predictions for TensorBoard each epoch.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L  # noqa: N812
import numpy as np
import numpy.typing as npt
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from segmentation_models_pytorch.losses import DiceLoss, SoftBCEWithLogitsLoss

from carvana.failures import JobError
from carvana.metrics import dice_per_image
from carvana.models.build import build_model
from carvana.models.inference import MEAN, STD, logits_at_input_size
from carvana.models.spec import ModelSpec

EXAMPLES = 4  # held-out images drawn for TensorBoard each epoch


class SegmentationTask(L.LightningModule):
    """Trains ``spec``'s network. The spec travels as JSON in the checkpoint's hyper-parameters."""

    def __init__(self, spec_json: str) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.spec = ModelSpec.from_json(spec_json)
        self.network = build_model(self.spec).to(memory_format=torch.channels_last)
        self.bce = SoftBCEWithLogitsLoss()
        self.soft_dice = DiceLoss("binary", from_logits=True)
        self.examples: list[npt.NDArray[np.uint8]] = []
        self.unchecked: Unchecked | None = None  # the last step's loss (check_finite)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Prepared inputs (N, 3, H', W') -> logits (N, 1, *input_size), tiles stitched for the UNet."""
        return logits_at_input_size(
            self.network, inputs.contiguous(memory_format=torch.channels_last), self.spec
        )

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        weights = self.spec.loss
        total: torch.Tensor = weights.bce * self.bce(logits, target) + weights.dice * self.soft_dice(
            logits, target
        )
        return total

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        inputs, target = batch
        loss = self.loss(self.network(inputs.contiguous(memory_format=torch.channels_last)), target)
        self.check_finite()  # the step before's, which the GPU has finished by now
        self.unchecked = Unchecked(loss, self.current_epoch, batch_index)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(inputs))
        return loss

    def check_finite(self) -> None:
        """Stop at a loss that is not finite, one step late: the loss reaches the host by an
        asynchronous copy, read at the next step once the GPU is past it, so the host never
        waits for the step it has just queued. Checked again before validation, so no checkpoint
        holds such a step."""
        if self.unchecked is None:
            return
        loss, epoch, batch_index = self.unchecked.read()
        self.unchecked = None
        if not math.isfinite(loss):
            name = self.spec.name
            float32 = f" or set models.{name}.precision to 32-true"
            if self.spec.precision == "32-true":  # a network in float32 has no precision to give up
                float32 = ""
            raise JobError(
                f"model {name!r}: the training loss is {loss} at epoch {epoch + 1}, step "
                f"{batch_index + 1}; no weights were written. Lower models.{name}.optimizer.lr (it is "
                f"{self.spec.optimizer.lr}){float32}"
            )

    def on_validation_start(self) -> None:
        self.check_finite()

    def on_train_epoch_end(self) -> None:
        self.check_finite()

    def on_train_start(self) -> None:
        if self.current_epoch:  # resumed from a checkpoint
            print(
                f"resumed after epoch {self.current_epoch}: training epochs "
                f"{self.current_epoch + 1}..{self.spec.epochs}",
                flush=True,
            )

    def on_train_epoch_start(self) -> None:
        optimizer = self.optimizers()
        assert not isinstance(optimizer, list)  # configure_optimizers returns one
        self.log("lr", optimizer.param_groups[0]["lr"], on_step=False, on_epoch=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        inputs, target = batch
        logits = self(inputs)
        self.log("val_loss", self.loss(logits, target), on_epoch=True, batch_size=len(inputs))
        self.log(
            "val_dice",
            dice_per_image(logits > 0, target > 0.5).mean(),  # the soft target's own mask
            on_epoch=True,
            prog_bar=True,
            batch_size=len(inputs),
        )
        for index in range(min(len(inputs), EXAMPLES - len(self.examples))):
            self.examples.append(
                example_strip(inputs[index], target[index, 0], torch.sigmoid(logits[index, 0]), self.spec)
            )

    def on_validation_epoch_end(self) -> None:
        if self.examples and not self.trainer.sanity_checking:
            for logger in self.loggers:
                if isinstance(logger, TensorBoardLogger):
                    grid = np.concatenate(self.examples, axis=0)
                    logger.experiment.add_image(
                        "held_out_predictions", grid, self.current_epoch, dataformats="HWC"
                    )
        self.examples = []

    def configure_optimizers(self) -> Any:
        settings = self.spec.optimizer
        parameters = self.network.parameters()
        optimizer: torch.optim.Optimizer
        if settings.name == "sgd":
            optimizer = torch.optim.SGD(
                parameters, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
            )
        elif settings.name == "rmsprop":
            optimizer = torch.optim.RMSprop(
                parameters, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
            )
        elif settings.name == "adamw":
            optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
        else:
            optimizer = torch.optim.Adam(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
        if self.spec.scheduler == "none":
            return optimizer
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.spec.epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


class Unchecked:
    """A step's loss on its way to the host: copied without blocking (into pinned memory) on a
    GPU, with an event that marks when the copy is done."""

    def __init__(self, loss: torch.Tensor, epoch: int, batch_index: int) -> None:
        self.epoch, self.batch_index = epoch, batch_index
        self.loss = loss.detach().to("cpu", non_blocking=True)
        self.copied: torch.cuda.Event | None = None
        if loss.is_cuda:
            self.copied = torch.cuda.Event()  # type: ignore[no-untyped-call]
            self.copied.record()

    def read(self) -> tuple[float, int, int]:
        """(the loss, its epoch, its step), waiting for the copy alone, not for later work."""
        if self.copied is not None:
            self.copied.synchronize()
        return float(self.loss), self.epoch, self.batch_index


def example_strip(
    inputs: torch.Tensor, truth: torch.Tensor, probability: torch.Tensor, spec: ModelSpec
) -> npt.NDArray[np.uint8]:
    """One row of the TensorBoard picture: image | true mask | predicted probability, side by side.

    ``inputs`` (3, H', W') normalised (padded for the UNet), ``truth`` and ``probability``
    (H, W) at ``input_size``. Returns (H, 3W, 3) uint8.
    """
    height, width = spec.input_size
    offset = spec.border
    image = (
        inputs[:, offset : offset + height, offset : offset + width].float().cpu().numpy().transpose(1, 2, 0)
    )
    image = np.clip(image * STD + MEAN, 0, 255)
    grey = [np.repeat(m.float().cpu().numpy()[..., None] * 255, 3, axis=2) for m in (truth, probability)]
    return np.concatenate([image, *grey], axis=1).astype(np.uint8)
