"""The Lightning module's own checks, without a Trainer."""

from __future__ import annotations

import warnings

import pytest
import torch

from carvana.failures import JobError
from carvana.models.spec import ModelSpec
from carvana.training.task import SegmentationTask

TINY = {"arch": "unet1024", "width": 0.125, "input_size": [64, 64], "gpu": 0, "optimizer": {"lr": 0.1}}


def batch(value: float) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((2, 3, 64, 64), value), torch.zeros(2, 1, 64, 64)


def test_a_loss_that_is_not_finite_stops_training_one_step_later_and_before_validation() -> None:
    task = SegmentationTask(ModelSpec.from_entry("tiny", TINY).to_json())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a Trainer
        task.training_step(batch(0.0), 0)
        task.training_step(batch(float("nan")), 1)  # read at the next step, not waited for now
        with pytest.raises(JobError, match=r"the training loss is nan at epoch 1, step 2; no weights"):
            task.training_step(batch(0.0), 2)
        task.training_step(batch(float("inf")), 3)
        with pytest.raises(
            JobError, match=r"at epoch 1, step 4; .* models\.tiny\.optimizer\.lr \(it is 0\.1\)"
        ):
            task.on_validation_start()  # the last step of an epoch: before any checkpoint is written
        task.training_step(batch(0.0), 4)
        task.on_validation_start()  # finite: nothing to say


@pytest.mark.parametrize(
    ("precision", "advice"),
    [
        ("auto", r"\(it is 0\.1\) or set models\.tiny\.precision to 32-true$"),
        ("bf16-mixed", r"\(it is 0\.1\) or set models\.tiny\.precision to 32-true$"),
        ("32-true", r"\(it is 0\.1\)$"),  # already float32: lowering the rate is the advice
    ],
)
def test_a_loss_that_is_not_finite_advises_float32_only_to_a_network_not_in_it(
    precision: str, advice: str
) -> None:
    task = SegmentationTask(ModelSpec.from_entry("tiny", {**TINY, "precision": precision}).to_json())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task.training_step(batch(float("nan")), 0)
        with pytest.raises(JobError, match=advice):
            task.on_validation_start()
