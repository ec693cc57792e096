"""RLE speed on full-size 1918x1280 masks, beside the common Kaggle-kernel encoder in the same run.

Run: ``.venv/bin/python benchmarks/rle_speed.py [--repeats N]``. Prints medians in milliseconds
and the kernel/ours ratio; checks first that both encoders give the same string.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import numpy.typing as npt

from carvana import rle
from carvana.data.synthetic import random_car, render_view
from carvana.layout import COMPETITION_SIZE


def kernel_encode(mask: npt.NDArray[np.uint8]) -> str:
    """The encoder most Carvana kernels used: pads and diffs the mask widened to int64."""
    pixels = np.concatenate([[0], mask.flatten(), [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


def median_ms(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    masks = [render_view(random_car(rng, f"{i:012x}"), 1 + 3 * i, COMPETITION_SIZE, rng)[1] for i in range(4)]
    for mask in masks:
        if kernel_encode(mask) != rle.encode(mask):
            raise SystemExit("the two encoders disagree")
    encoded = [rle.encode(mask) for mask in masks]
    ours = np.mean([median_ms(partial(rle.encode, m), args.repeats) for m in masks])
    kernel = np.mean([median_ms(partial(kernel_encode, m), args.repeats) for m in masks])
    decode = np.mean(
        [
            median_ms(partial(rle.decode, s, (m.shape[0], m.shape[1])), args.repeats)
            for s, m in zip(encoded, masks, strict=True)
        ]
    )
    print(f"masks: {len(masks)} of {COMPETITION_SIZE[1]}x{COMPETITION_SIZE[0]} (WxH), {args.repeats} repeats")
    print(f"{'step':<22}{'median ms':>10}")
    print(f"{'encode (carvana.rle)':<22}{ours:>10.3f}")
    print(f"{'encode (kernel)':<22}{kernel:>10.3f}")
    print(f"{'decode (carvana.rle)':<22}{decode:>10.3f}")
    print(f"kernel / carvana.rle encode: {kernel / ours:.1f}x")


if __name__ == "__main__":
    main()
