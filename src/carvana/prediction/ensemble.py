"""The trained ensemble: every model of every fold, each with TTA, probabilities averaged.

``Ensemble.probabilities(images)`` maps a batch of test images (any size, uint8 RGB) to their
weighted mean probability maps at each image's own size. Each member sees the images resized to
its own input size (and to each TTA scale of it); the flip views of a size go through the network
in one forward; its probabilities are resized back and added into one float32 map per image, so a
batch holds one map per image whatever the number of members.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from carvana.models.build import build_model
from carvana.models.inference import logits_at_input_size, network_input, resize
from carvana.models.spec import ModelSpec
from carvana.prediction.tta import TTASpec, merge_views, tta_inputs
from carvana.prediction.weights import model_weights


@dataclass
class Member:
    """One trained network (a model on one fold)."""

    spec: ModelSpec
    fold: int
    network: nn.Module


def load_member(weights_path: Path, device: torch.device) -> Member:
    """A network from the weights.pt a training job wrote, in eval mode on ``device``."""
    saved = torch.load(weights_path, map_location="cpu", weights_only=False)
    spec = ModelSpec.from_json(saved["spec"])
    network = build_model(spec)
    network.load_state_dict(saved["state_dict"])
    network = network.to(device).to(memory_format=torch.channels_last).eval()
    return Member(spec, int(saved["fold"]), network)


class Ensemble:
    """Members averaged by weight (1 each unless given), each with the same TTA views and scales."""

    def __init__(
        self,
        members: list[Member],
        tta: TTASpec,
        device: torch.device,
        autocast: torch.dtype | None,
        weights: Mapping[str, float] | None = None,
    ):
        if not members:
            raise ValueError("an ensemble needs at least one trained model")
        self.members, self.tta, self.device, self.autocast = members, tta, device, autocast
        self.weights = model_weights([member.spec.name for member in members], weights or {})

    @torch.no_grad()
    def member_probabilities(
        self, member: Member, spec: ModelSpec, images: list[npt.NDArray[np.uint8]]
    ) -> torch.Tensor:
        """(N, 1, *spec.input_size) mean flip-TTA probabilities of one member for images at
        ``spec.input_size`` (the member's own spec, or it at a TTA scale)."""
        views = self.tta.views()
        inputs = torch.from_numpy(tta_inputs(images, views, lambda image: network_input(image, spec)))
        inputs = inputs.to(self.device).contiguous(memory_format=torch.channels_last)
        dtype = self.autocast
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            logits = logits_at_input_size(member.network, inputs, spec)
        return merge_views(logits, views)

    def probabilities(self, images: list[npt.NDArray[np.uint8]]) -> list[npt.NDArray[np.float32]]:
        """Weighted mean probability map of each image (H, W) float32, at the image's own size."""
        totals = [np.zeros(image.shape[:2], dtype=np.float32) for image in images]
        scales = self.tta.scales
        for member, weight in zip(self.members, self.weights, strict=True):
            if not weight:
                continue
            for scale in scales:
                spec = member.spec.at_scale(scale)
                resized = [np.asarray(resize(image, spec.input_size), dtype=np.uint8) for image in images]
                maps = self.member_probabilities(member, spec, resized)[:, 0].cpu().numpy()
                for image, total, probability in zip(images, totals, maps, strict=True):
                    total += (weight / len(scales)) * np.asarray(resize(probability, image.shape[:2]))
        return [np.asarray(total / sum(self.weights), dtype=np.float32) for total in totals]
