"""The naive prediction loop, as a Kaggle kernel writes it: the reference the fast path is timed
against and checked against (tests/prediction/test_fast_path.py).

One image at a time: PIL decode, then for each network and each TTA view one forward of that one
image, the probability resized back to the image's size and added up, the mean thresholded, and
the kernel's RLE (the mask widened to int64 and diffed). The same arithmetic as
``carvana.prediction`` (same resizes, same weights, same order of sums), none of its engineering.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from carvana.layout import RLE_HEADER
from carvana.models.inference import logits_at_input_size, network_input, resize
from carvana.prediction.ensemble import Member, add_weighted
from carvana.prediction.tta import TTASpec, flip_image, flip_tensor
from carvana.prediction.weights import model_weights

CPU = torch.device("cpu")


def kernel_rle(mask: npt.NDArray[np.generic]) -> str:
    """The encoder most Carvana kernels used."""
    pixels = np.concatenate([[0], mask.flatten(), [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


@torch.no_grad()
def naive_probability(
    image: npt.NDArray[np.uint8],
    members: list[Member],
    tta: TTASpec,
    weights: dict[str, float],
    autocast: torch.dtype | None,
    device: torch.device,
) -> npt.NDArray[np.float32]:
    """The ensemble's mean probability of one image at its own size, one forward per view."""
    chosen = model_weights([member.spec.name for member in members], weights)
    total = np.zeros(image.shape[:2], dtype=np.float32)
    for member, weight in zip(members, chosen, strict=True):
        if not weight:
            continue
        for scale in tta.scales:
            spec = member.spec.at_scale(scale)
            small = np.asarray(resize(image, spec.input_size), dtype=np.uint8)
            views = tta.views()
            seen = []
            for view in views:
                inputs = torch.from_numpy(network_input(np.ascontiguousarray(flip_image(small, view)), spec))
                with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                    logits = logits_at_input_size(member.network, inputs[None].to(device), spec)
                seen.append(flip_tensor(torch.sigmoid(logits.float()), view))
            probability = torch.stack(seen).mean(dim=0)[0, 0].cpu().numpy()
            grown = np.asarray(resize(probability, image.shape[:2]), dtype=np.float32)
            add_weighted(total, grown, weight / len(tta.scales))
    return np.asarray(total / np.float32(sum(chosen)), dtype=np.float32)


def naive_predict(
    image_paths: list[Path],
    members: list[Member],
    tta: TTASpec,
    weights: dict[str, float],
    threshold: float,
    out_path: Path,
    autocast: torch.dtype | None = None,
    device: torch.device = CPU,
) -> None:
    """Write ``img,rle_mask`` rows for ``image_paths`` to ``out_path``, one image at a time."""
    with out_path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(RLE_HEADER)
        for path in image_paths:
            image = np.asarray(Image.open(path).convert("RGB"))
            probability = naive_probability(image, members, tta, weights, autocast, device)
            writer.writerow((path.name, kernel_rle((probability >= threshold).astype(np.uint8))))
