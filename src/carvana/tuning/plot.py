"""The tuning's figure: mean OOF Dice against the threshold (dice_vs_threshold.png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from carvana.atomic import atomic_path


def plot_curves(
    thresholds: npt.NDArray[np.float64],
    mean_dice: dict[str, npt.NDArray[np.float64]],
    chosen: dict[str, dict[str, float]],
    ensemble: str,
    path: Path,
) -> None:
    """Mean OOF Dice against threshold, one line per member of ``mean_dice`` (each a curve over
    ``thresholds``), the ``ensemble`` member's bold with its chosen threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    for member, curve in mean_dice.items():
        bold = member == ensemble
        axes.plot(
            thresholds,
            curve,
            linewidth=2.5 if bold else 1.2,
            color="black" if bold else None,
            label=f"{member}: {chosen[member]['dice']:.4f} at {chosen[member]['threshold']:.2f}",
        )
    axes.axvline(chosen[ensemble]["threshold"], color="black", linestyle=":", linewidth=1)
    axes.set_xlabel("threshold")
    axes.set_ylabel("mean OOF Dice")
    axes.set_title("Out-of-fold Dice against threshold")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower center", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
