"""The trained ensemble: every model of every fold, each with TTA, probabilities averaged.

``Ensemble.probabilities(images)`` maps a batch of test images (any size, uint8 RGB) to their
weighted mean probability maps at each image's own size. It runs in three steps, which the
prediction shard overlaps across batches (``carvana.prediction.shard``):

- ``prepare``: each image resized to every input size the members take (once per distinct
  geometry, shared by the members that take it) and its TTA views stacked;
- ``forward``: the networks, one forward per member and scale with every flip view in it;
  returns each member's mean probability at its input size;
- ``finish``: those maps resized back to each image's size and added by weight into one
  float32 map per image, so a batch holds one full-size map per image whatever the members.

Only ``forward`` runs on the accelerator; the other two are NumPy and OpenCV, which release the
GIL, so they run in threads (or ``prepare`` in worker processes) beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from carvana.models.build import build_model
from carvana.models.inference import (
    autocast_for,
    half,
    halvings,
    logits_at_input_size,
    network_input,
    resize,
)
from carvana.models.spec import ModelSpec
from carvana.prediction.tta import TTASpec, merge_views, tta_inputs
from carvana.prediction.weights import model_weights


@dataclass
class Member:
    """One trained network (a model on one fold)."""

    spec: ModelSpec
    fold: int
    network: nn.Module


def read_member(weights_path: Path) -> Member:
    """The network a training job wrote to weights.pt, as it was trained, in eval mode on the CPU."""
    saved = torch.load(weights_path, map_location="cpu", weights_only=False)
    spec = ModelSpec.from_json(saved["spec"])
    network = build_model(spec, load_pretrained=False)  # its trained weights replace them
    network.load_state_dict(saved["state_dict"])
    return Member(spec, int(saved["fold"]), network.eval())


def load_member(weights_path: Path, device: torch.device) -> Member:
    """``read_member`` made ready for inference on ``device``: channels-last, each BatchNorm
    folded into the convolution before it."""
    member = read_member(weights_path)
    member.network = fold_batch_norms(member.network).to(device).to(memory_format=torch.channels_last)
    return member


@torch.no_grad()
def fold_batch_norms(network: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d in an nn.Sequential into
    that convolution's weights and bias (the BatchNorm becomes an identity): the same function in
    one layer instead of two, about a tenth faster on a CPU. Only these exact classes: a subclass
    may compute something else."""
    for module in network.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for index in range(len(module) - 1):
            conv, norm = module[index], module[index + 1]
            if not (type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d):  # not subclasses
                continue
            if norm.training or norm.running_mean is None or norm.running_var is None:
                continue
            scale = (norm.weight if norm.affine else torch.ones_like(norm.running_var)) / torch.sqrt(
                norm.running_var + norm.eps
            )
            shift = norm.bias if norm.affine else torch.zeros_like(norm.running_mean)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            conv.bias = nn.Parameter((bias - norm.running_mean) * scale + shift)
            module[index + 1] = nn.Identity()
    return network


def opencv_threads(device: torch.device) -> None:
    """On a CPU the networks' threads take the cores, so OpenCV, in the loader and writer threads,
    runs on one core in each; beside a GPU it may use the job's CPU threads."""
    cv2.setNumThreads(1 if device.type == "cpu" else torch.get_num_threads())


class Ensemble:
    """Members averaged by weight (1 each unless given), each with the same TTA views and scales.

    ``autocast``: the dtype members whose ``precision`` is auto run in (None: float32); a member
    trained at another precision predicts at that one (:func:`autocast_for`)."""

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

    def inputs_key(self, spec: ModelSpec) -> tuple[object, ...]:
        """What a member's inputs depend on: members with the same key share them."""
        return (spec.input_size, spec.tile_size, spec.border)

    def runs(self) -> list[tuple[Member, float, ModelSpec]]:
        """Each forward a batch takes: (member, its weight per scale, its spec at that scale)."""
        scales = self.tta.scales
        return [
            (member, weight / len(scales), member.spec.at_scale(scale))
            for member, weight in zip(self.members, self.weights, strict=True)
            if weight
            for scale in scales
        ]

    def prepare(self, images: list[npt.NDArray[np.uint8]]) -> Prepared:
        """The networks' inputs for a batch: per distinct geometry, (V * N, C, H', W') float32."""
        views = self.tta.views()
        inputs: dict[tuple[object, ...], torch.Tensor] = {}
        chains = [[image] for image in images]  # each image halved 0, 1, ... times, shared by sizes

        def shrunk(index: int, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
            """``halve(images[index], size)``, each halving made once for every size of the batch."""
            chain, count = chains[index], halvings(images[index].shape, size)
            while len(chain) <= count:
                chain.append(np.asarray(half(chain[-1]), dtype=np.uint8))
            return chain[count]

        for _, _, spec in self.runs():
            key = self.inputs_key(spec)
            if key not in inputs:
                size = spec.input_size
                resized = [
                    np.asarray(resize(shrunk(i, size), size), dtype=np.uint8) for i in range(len(images))
                ]
                inputs[key] = torch.from_numpy(tta_inputs(resized, views, partial(network_input, spec=spec)))
        return Prepared([image.shape[:2] for image in images], inputs)

    @torch.no_grad()
    def forward(self, prepared: Prepared) -> list[npt.NDArray[np.float32]]:
        """Each run's mean flip-TTA probability maps (N, *input_size) float32, in ``runs`` order."""
        views = self.tta.views()
        runs = self.runs()
        keys = [self.inputs_key(spec) for _, _, spec in runs]
        last_use = {key: number for number, key in enumerate(keys)}
        on_device: dict[tuple[object, ...], torch.Tensor] = {}
        maps = []
        for number, ((member, _, spec), key) in enumerate(zip(runs, keys, strict=True)):
            if key not in on_device:
                batch = prepared.inputs[key]  # one copy: to the device and to channels-last at once
                on_device[key] = batch.to(self.device, memory_format=torch.channels_last, non_blocking=True)
            dtype = autocast_for(member.spec.precision, self.autocast, self.device)
            with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
                logits = logits_at_input_size(member.network, on_device[key], spec)
            if last_use[key] == number:  # no later run takes these inputs: free the GPU's copy
                del on_device[key]
            maps.append(merge_views(logits, views)[:, 0].cpu().numpy())
        return maps

    def finish(
        self, sizes: list[tuple[int, int]], maps: list[npt.NDArray[np.float32]]
    ) -> list[npt.NDArray[np.float32]]:
        """Weighted mean probability map of each image (H, W) float32, at its size in ``sizes``."""
        totals = [np.zeros(size, dtype=np.float32) for size in sizes]
        for (_, weight, _), probabilities in zip(self.runs(), maps, strict=True):
            for size, total, probability in zip(sizes, totals, probabilities, strict=True):
                add_weighted(total, np.asarray(resize(probability, size), dtype=np.float32), weight)
        return [np.divide(total, np.float32(sum(self.weights)), out=total) for total in totals]

    def probabilities(self, images: list[npt.NDArray[np.uint8]]) -> list[npt.NDArray[np.float32]]:
        """Weighted mean probability map of each image (H, W) float32, at the image's own size."""
        prepared = self.prepare(images)
        return self.finish(prepared.sizes, self.forward(prepared))


def add_weighted(total: npt.NDArray[np.float32], probability: npt.NDArray[np.float32], weight: float) -> None:
    """``total += weight * probability`` in one pass (OpenCV's scaleAdd, three times faster than
    NumPy's two on a full-size map)."""
    cv2.scaleAdd(probability, weight, total, dst=total)


@dataclass
class Prepared:
    """A batch ready for the networks: each image's (height, width) and the inputs by geometry."""

    sizes: list[tuple[int, int]]
    inputs: dict[tuple[object, ...], torch.Tensor]

    def pin_memory(self) -> Prepared:
        """The batch in pinned (page-locked) host memory, which a GPU copies from directly and
        without holding up the host (the DataLoader calls this too)."""
        return Prepared(self.sizes, {key: batch.pin_memory() for key, batch in self.inputs.items()})
