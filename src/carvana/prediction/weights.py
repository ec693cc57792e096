"""Per-model ensemble weights, shared by threshold tuning and prediction (no torch here).

The ensemble's map is the weighted mean of its members' probabilities; every fold of a model
takes that model's weight, and a model left out weighs 1. Tuning and prediction weigh alike, so
the tuned threshold is the one for the map that prediction thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


def job_name(model: str, fold: int) -> str:
    """How thresholds.json names one training job's network (in its ``left_out``): ``<model>/fold<k>``."""
    return f"{model}/fold{fold}"


def parse_weights(items: Iterable[str]) -> dict[str, float]:
    """``["unet=2", "unet11=0.5"]`` (as the command line takes them) -> {"unet": 2.0, "unet11": 0.5}."""
    weights: dict[str, float] = {}
    for item in items:
        name, separator, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not separator or not name or not math.isfinite(weight):
            raise ValueError(f"ensemble weight {item!r} is not MODEL=NUMBER, e.g. unet11=0.5")
        if name in weights:
            raise ValueError(f"ensemble weight of {name!r} is given twice")
        weights[name] = weight
    return weights


def model_weights(models: list[str], weights: Mapping[str, float]) -> list[float]:
    """The weight of each entry of ``models`` (names may repeat, one per fold), checked."""
    unknown = sorted(set(weights) - set(models))
    if unknown:
        raise ValueError(
            f"ensemble weights name {unknown}, which are not in the ensemble; its models are "
            f"{sorted(set(models))}"
        )
    negative = {name: weight for name, weight in weights.items() if weight < 0}
    if negative:
        raise ValueError(f"ensemble weights must be >= 0, got {negative}")
    chosen = [float(weights.get(model, 1.0)) for model in models]
    if not any(chosen):
        raise ValueError(f"every ensemble weight is 0 ({dict(weights)}): give at least one model a weight")
    return chosen
