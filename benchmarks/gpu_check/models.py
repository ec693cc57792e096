"""The configured models as gpu_check measures them: scaled, thinned, with random weights, on the
device measured."""

from __future__ import annotations

import argparse
import dataclasses
import itertools

import torch

from carvana.models.geometry import unet_output_size
from carvana.models.spec import ModelSpec


def sized(spec: ModelSpec, args: argparse.Namespace, device: torch.device) -> ModelSpec:
    """The configured model as measured here: at ``--image-scale`` (its input size scaled; the
    UNet's tile the configured one, or the smallest that covers the scaled image, whichever is
    smaller), at ``--width``, with random weights, on the device measured."""
    spec = spec.at_scale(args.image_scale)
    if spec.tile_size is not None:
        tile = (smallest_tile(spec.input_size[0]), smallest_tile(spec.input_size[1]))
        spec = dataclasses.replace(
            spec, tile_size=(min(spec.tile_size[0], tile[0]), min(spec.tile_size[1], tile[1]))
        )
    workers = spec.workers if args.train_workers is None else args.train_workers
    return dataclasses.replace(
        spec,
        width=spec.width if args.width is None else args.width,
        dropout=spec.dropout if args.width in (None, 1) else 0.0,
        pretrained=False,
        gpu=1 if device.type == "cuda" else 0,
        workers=workers,
    )


def smallest_tile(side: int) -> int:
    """The smallest unpadded-UNet input side (16k + 124) whose output covers ``side`` pixels."""
    return next(t for t in itertools.count(188, 16) if unet_output_size(t) >= side)
