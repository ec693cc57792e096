"""Networks that learnt nothing, and thresholds at the edge of their grid: said, not blended in.

A training job can end with a network that predicts nothing useful (a colour it never saw, a
learning rate that diverged, too few images) and still write weights. Its fold's OOF Dice shows
it: far below the same model's other folds, or near zero. Such a network is flagged by
``flag_jobs``; ``ensemble.weights: auto`` leaves it out, and explicit weights keep it with a
warning. A tuned threshold at the first or last point of the grid means the best one may lie
outside it: ``edge_warnings`` says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from carvana import schema

Job = tuple[str, int]  # (model, fold)


@dataclass(frozen=True)
class FlagRule:
    """A job is flagged when its OOF Dice at threshold 0.5 is below ``min_dice``, or below the
    median of the same model's other folds by more than ``max_gap``."""

    min_dice: float = schema.default("tune.flag.min_dice")
    max_gap: float = schema.default("tune.flag.max_gap")

    def __post_init__(self) -> None:
        if not 0 <= self.min_dice <= 1:
            raise ValueError(f"tune.flag.min_dice is a Dice in [0, 1], got {self.min_dice}")
        if not 0 < self.max_gap <= 1:
            raise ValueError(f"tune.flag.max_gap is a Dice difference in (0, 1], got {self.max_gap}")


def flag_jobs(job_dice: Mapping[Job, float], rule: FlagRule) -> dict[Job, str]:
    """The flagged jobs of ``job_dice`` ((model, fold) -> OOF Dice at 0.5), each with the reason
    in words, in (model, fold) order."""
    flagged = {}
    for (model, fold), dice in sorted(job_dice.items()):
        siblings = [value for (other, k), value in job_dice.items() if other == model and k != fold]
        median = statistics.median(siblings) if siblings else None
        if dice < rule.min_dice:
            flagged[model, fold] = f"OOF Dice {dice:.3f} at 0.5, below tune.flag.min_dice {rule.min_dice}"
        elif median is not None and median - dice > rule.max_gap:
            flagged[model, fold] = (
                f"OOF Dice {dice:.3f} at 0.5, {median - dice:.3f} below the median of its other folds "
                f"({median:.3f}; tune.flag.max_gap {rule.max_gap})"
            )
    return flagged


def edge_warnings(chosen: Mapping[str, float], start: float, stop: float) -> list[str]:
    """A warning for each member (name -> tuned threshold) whose threshold is the grid's first or
    last value: the best threshold may lie beyond it."""
    warnings = []
    for member, threshold in chosen.items():
        edges = (
            (start, "first", "lower tune.thresholds.start"),
            (stop, "last", "raise tune.thresholds.stop"),
        )
        for edge, side, advice in edges:
            if abs(threshold - edge) < 1e-9:
                warnings.append(
                    f"{member}: its tuned threshold {threshold:.2f} is the grid's {side} value; "
                    f"the best may lie beyond it ({advice}), or its maps are poorly calibrated"
                )
    return warnings
