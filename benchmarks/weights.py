"""The weights the benchmarks time networks with: random ones, saved as training saves them, and
the config's ensemble weights. A network's speed depends on neither's values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from carvana.models.build import build_model
from carvana.models.spec import ModelSpec


def random_weights(specs: list[ModelSpec], folds: int, root: Path) -> list[Path]:
    """weights.pt files as training writes them, of randomly initialised networks."""
    torch.manual_seed(0)
    paths = []
    for spec in specs:
        for fold in range(folds):
            path = root / "models" / spec.name / f"fold{fold}" / "weights.pt"
            path.parent.mkdir(parents=True)
            state = build_model(spec).state_dict()
            torch.save({"spec": spec.to_json(), "fold": fold, "epoch": 1, "state_dict": state}, path)
            paths.append(path)
    (root / "thresholds.json").write_text(json.dumps({"threshold": 0.5}))  # weights: 1 each
    return paths


def config_weights(config: dict[str, Any]) -> dict[str, float]:
    """The config's ensemble weights; auto (chosen by tuning) is timed as equal weights, since
    the networks' speed does not depend on them."""
    weights = config.get("ensemble", {}).get("weights", {})
    return {} if weights == "auto" else dict(weights)
