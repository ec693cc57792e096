"""Float32 against bf16 autocast on this machine's CPU: what ``precision: auto`` should mean here.

For each of the three architectures, at the offline default's settings and at the competition's
input sizes with a few channels per layer (as the full-resolution test runs them), it times a
training step (forward, backward, SGD step) and a forward alone, best of ``--repeats``, and prints
both and their ratio. bf16 pays only where the CPU computes it in hardware (oneDNN's test, printed
first); on an AVX2-only CPU it is emulated.

    python -m benchmarks.precision [--threads 2] [--repeats 3]

in the repository root (``python benchmarks/precision.py`` runs it too: it imports nothing from
the benchmarks package).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from carvana.models.build import build_model
from carvana.models.inference import cpu_has_fast_bf16
from carvana.models.spec import ModelSpec

# (label, model entry, batch): the offline default's models, then competition.yaml's sizes thinned
CASES: list[tuple[str, dict[str, object], int]] = [
    ("offline unet", {"arch": "unet", "width": 0.125, "input_size": [80, 120], "tile_size": [268, 316]}, 4),
    ("offline unet1024", {"arch": "unet1024", "width": 0.125, "input_size": [128, 192]}, 4),
    ("offline unet11", {"arch": "unet11", "width": 0.25, "input_size": [128, 192]}, 4),
    (
        "full-size unet tile",
        {"arch": "unet", "width": 0.0625, "input_size": [572, 572], "tile_size": [572, 572]},
        2,
    ),
    ("full-size unet1024", {"arch": "unet1024", "width": 0.125, "input_size": [1024, 1024]}, 2),
    ("full-size unet11", {"arch": "unet11", "width": 0.0625, "input_size": [1280, 1920]}, 2),
]


def best_seconds(run: Callable[[], None], repeats: int) -> float:
    run()  # warm-up: oneDNN picks its kernels on the first call
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def timings(network: nn.Module, inputs: torch.Tensor, bf16: bool, repeats: int) -> tuple[float, float]:
    """(training step, forward) seconds per batch."""
    optimizer = torch.optim.SGD(network.parameters(), lr=1e-3)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = network(inputs).float().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def forward() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            network(inputs)

    network.train()
    trained = best_seconds(step, repeats)
    network.eval()
    return trained, best_seconds(forward, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"bf16 in hardware (oneDNN): {cpu_has_fast_bf16()}; {args.threads} threads")
    steps = f"{'step fp32':>9} {'step bf16':>9} {'ratio':>6}"
    forwards = f"{'fwd fp32':>8} {'fwd bf16':>8} {'ratio':>6}"
    print(f"{'case':<22}{'input':>11}  {steps}  {forwards}")
    for label, entry, batch in CASES:
        spec = ModelSpec.from_entry("m", entry)
        height, width = spec.tile_size or spec.input_size
        torch.manual_seed(0)
        network = build_model(spec).to(memory_format=torch.channels_last)
        inputs = torch.rand(batch, 3, height, width).contiguous(memory_format=torch.channels_last)
        step32, forward32 = timings(network, inputs, False, args.repeats)
        step16, forward16 = timings(network, inputs, True, args.repeats)
        print(
            f"{label:<22}{height:>5}x{width:<5}  {step32:>8.3f}s {step16:>8.3f}s {step16 / step32:>5.1f}x"
            f"  {forward32:>7.3f}s {forward16:>7.3f}s {forward16 / forward32:>5.1f}x"
        )
    print("ratio: bf16 time / float32 time per batch (above 1: float32 is faster)")


if __name__ == "__main__":
    main()
