"""FLOPs per image of a network, counted by PyTorch's own counter on the meta device (nothing is
computed and no memory is taken, so the full-size networks count in a second on any machine)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from carvana.models.build import build_model
from carvana.models.inference import logits_at_input_size, tile_grid
from carvana.models.spec import ModelSpec


def flops(spec: ModelSpec, train: bool, images: int = 2) -> float:
    """FLOPs per image of a training step (forward and backward on the training input: one tile
    for the UNet) or of a forward on the whole input (validation, prediction: every tile), counted
    on the meta device over ``images`` images (a BatchNorm in training takes no batch of one)."""
    grid = tile_grid(spec)
    if train:
        size = spec.tile_size or spec.input_size
    else:
        size = grid.padded_size if grid is not None else spec.input_size
    with torch.device("meta"):
        network = build_model(spec, load_pretrained=False).train(train)
        inputs = torch.empty(images, 3, *size)
    with FlopCounterMode(display=False) as counter:
        if train:
            network(inputs).sum().backward()
        else:
            with torch.no_grad():
                logits_at_input_size(network, inputs, spec)
    return float(counter.get_total_flops()) / images
