"""The ablation table: what each step of the final recipe adds, out of fold, with its fold noise.

Each step is a way of making the training images' OOF masks (a model alone without TTA, with
TTA, an ensemble...) given as every image's Dice at two thresholds: its tuned one and 0.5. A row
gives the mean Dice over all images, the mean and standard deviation of the folds' means (so a
gain can be read against the fold-to-fold spread), each fold's mean, and, against the step it is
compared with, the mean gain, the standard deviation over folds of that gain, and how many
images it improves and worsens (by more than ``CHANGE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

CHANGE = 1e-6  # a per-image Dice change smaller than this is counted as none

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Step:
    """One row: ``at_tuned`` and ``at_half`` are (images,) Dice at the step's tuned threshold
    (``threshold``; None where each fold has its own) and at 0.5; ``compared_with`` names an
    earlier step, or None."""

    name: str
    at_tuned: FloatArray
    at_half: FloatArray
    threshold: float | None
    compared_with: str | None = None
    weights: str = ""


def fold_means(values: FloatArray, folds: npt.NDArray[np.integer]) -> FloatArray:
    """The mean of ``values`` over each fold's images, folds in ascending order."""
    return np.array([values[folds == fold].mean() for fold in np.unique(folds)])


def spread(values: FloatArray) -> float:
    """Standard deviation over folds (n - 1 in the denominator; 0 for one fold)."""
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def ablation_table(steps: list[Step], folds: npt.NDArray[np.integer]) -> pd.DataFrame:
    """One row per step, in order; ``folds``: (images,) each image's fold."""
    by_name = {step.name: step for step in steps}
    if len(by_name) != len(steps):
        raise ValueError("ablation steps must have distinct names")
    rows = []
    for step in steps:
        for name, values in (("at_tuned", step.at_tuned), ("at_half", step.at_half)):
            if values.shape != folds.shape or np.isnan(values).any():
                raise ValueError(f"step {step.name!r}: {name} must be one Dice per image, got {values.shape}")
        tuned, half = fold_means(step.at_tuned, folds), fold_means(step.at_half, folds)
        row: dict[str, object] = {
            "step": step.name,
            "compared_with": step.compared_with or "",
            "weights": step.weights,
            "threshold": step.threshold if step.threshold is not None else np.nan,
            "dice": step.at_tuned.mean(),
            "dice_fold_mean": tuned.mean(),
            "dice_fold_std": spread(tuned),
            "dice_at_0.5": step.at_half.mean(),
            "dice_at_0.5_fold_mean": half.mean(),
            "dice_at_0.5_fold_std": spread(half),
        }
        row.update({f"dice_fold{fold}": value for fold, value in zip(np.unique(folds), tuned, strict=True)})
        gain, gain_std, improved, worsened = np.nan, np.nan, 0, 0
        if step.compared_with is not None:
            if step.compared_with not in by_name or steps.index(by_name[step.compared_with]) >= steps.index(
                step
            ):
                raise ValueError(
                    f"step {step.name!r} is compared with {step.compared_with!r}, not an earlier step"
                )
            change = step.at_tuned - by_name[step.compared_with].at_tuned
            gain, gain_std = float(change.mean()), spread(fold_means(change, folds))
            improved, worsened = int((change > CHANGE).sum()), int((change < -CHANGE).sum())
        row.update({"gain": gain, "gain_fold_std": gain_std, "improved": improved, "worsened": worsened})
        rows.append(row)
    return pd.DataFrame(rows)
