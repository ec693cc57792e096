"""What tuning writes, from the choice (``carvana.tuning.choice``), and what each step of it buys.

In ``out_dir``: ``thresholds.json`` (the threshold, the weights and the networks left out, which
prediction reads; each model's best threshold; the flags and warnings), ``oof_scores.csv`` (OOF
Dice per model and the ensemble, per fold and over all folds, at each one's best threshold and at
0.5), ``oof_images.csv`` (each image's Dice per model and for the ensemble, at those thresholds),
``ablation.csv`` (``carvana.tuning.ablation``: each model without and with TTA, equal weights,
the searched weights chosen on all folds and on the other folds, the final recipe) and
``dice_vs_threshold.png``. Each file appears whole or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from carvana.atomic import atomic_path, write_text
from carvana.prediction.weights import job_name
from carvana.tuning.ablation import Step, ablation_table
from carvana.tuning.blend import Choice, nested_choice
from carvana.tuning.choice import Tuned, Tuning, best_column
from carvana.tuning.flags import edge_warnings
from carvana.tuning.oof_set import ENSEMBLE
from carvana.tuning.threshold import ThresholdGrid


def write_outputs(tuning: Tuning, grid: ThresholdGrid, weight_step: float, out_dir: Path) -> dict[str, Any]:
    """Write thresholds.json, the tables and the plot to ``out_dir``; return thresholds.json's
    content. ``grid`` and ``weight_step`` are the ones the choice was made with."""
    chosen, scores, per_image = member_scores(tuning)
    ablation = ablation_table(ablation_steps(tuning, chosen), tuning.folds)
    result = thresholds_json(tuning, chosen, grid, weight_step)
    thresholds = tuning.thresholds
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "oof_scores.csv") as temporary:
        scores.to_csv(temporary, index=False, float_format="%.6f")
    with atomic_path(out_dir / "oof_images.csv") as temporary:
        per_image.to_csv(temporary, index=False, float_format="%.6f")
    with atomic_path(out_dir / "ablation.csv") as temporary:
        ablation.to_csv(temporary, index=False, float_format="%.6f")
    plot_curves(
        thresholds,
        {member: tuned.curve[:, : len(thresholds)].mean(axis=0) for member, tuned in tuning.members.items()},
        chosen,
        out_dir / "dice_vs_threshold.png",
    )
    write_text(out_dir / "thresholds.json", json.dumps(result, indent=2) + "\n")
    return result


def member_scores(tuning: Tuning) -> tuple[dict[str, dict[str, float]], pd.DataFrame, pd.DataFrame]:
    """Each member's (every model's and the ensemble's) threshold and mean OOF Dice there, as
    thresholds.json holds them; oof_scores.csv's table (each member's Dice over all folds and per
    fold, at its threshold and at 0.5); oof_images.csv's (each image's Dice per member)."""
    thresholds, folds, fold_ids = tuning.thresholds, tuning.folds, tuning.fold_ids
    chosen: dict[str, dict[str, float]] = {}
    per_image = tuning.oof.folds[["img", "car_id", "fold"]].copy()
    rows = []
    for member, tuned in tuning.members.items():
        threshold = float(thresholds[tuned.column])
        chosen[member] = {"threshold": threshold, "dice": float(tuned.at_tuned().mean())}
        per_image[member] = tuned.at_tuned()
        groups = [("all", np.ones(len(folds), dtype=bool))] + [(str(f), folds == f) for f in fold_ids]
        for fold_label, rows_of in groups:
            rows.append(
                {
                    "model": member,
                    "fold": fold_label,
                    "images": int(rows_of.sum()),
                    "threshold": threshold,
                    "dice": tuned.at_tuned()[rows_of].mean(),
                    "dice_at_0.5": tuned.at_half()[rows_of].mean(),
                }
            )
    return chosen, pd.DataFrame(rows), per_image


def ablation_steps(tuning: Tuning, chosen: dict[str, dict[str, float]]) -> list[Step]:
    """The ablation's steps: each model without TTA and with it, the equal-weight ensemble, the
    searched weights (chosen on all folds, and with more than one fold on the other folds), and
    the final recipe, each compared with the step it builds on."""
    models, thresholds, folds = tuning.models, tuning.thresholds, tuning.folds
    best_single = max(models, key=lambda model: chosen[model]["dice"])
    steps = []
    for model in models:
        curve = tuning.oof.plain[model]
        plain = Tuned({model: 1.0}, best_column(curve, thresholds), curve)
        steps.append(_step(f"{model} without TTA", plain, thresholds, None))
        steps.append(_step(f"{model} with TTA", tuning.members[model], thresholds, f"{model} without TTA"))
    steps.append(_step("equal-weight ensemble", tuning.equal, thresholds, f"{best_single} with TTA"))
    steps.append(_step("tuned-weight ensemble", tuning.search, thresholds, "equal-weight ensemble"))
    if len(tuning.fold_ids) > 1:  # the search's gain as a new image meets it
        searched_curves, grid_points = tuning.searched_curves, tuning.grid_points
        nested_tuned, nested_half, nested = nested_choice(
            searched_curves[:, :, : len(thresholds)],
            searched_curves[:, :, -1],
            grid_points,
            thresholds,
            folds,
        )
        by_fold = [f"fold {f}: {_describe(_weights_of(models, grid_points, c))}" for f, c in nested.items()]
        steps.append(
            Step(
                "tuned weights, chosen on the other folds",
                nested_tuned,
                nested_half,
                None,
                "equal-weight ensemble",
                "; ".join(by_fold),
            )
        )
    steps.append(_step("final recipe", tuning.members[ENSEMBLE], thresholds, f"{best_single} with TTA"))
    return steps


def tuning_warnings(tuning: Tuning, chosen: dict[str, dict[str, float]]) -> list[str]:
    """The flagged networks (and what became of them), the folds with every network flagged, and
    the thresholds on the edge of the grid."""
    thresholds = tuning.thresholds
    warnings = [
        f"{job_name(model, fold)}: {reason}; "
        + (
            "left out of the ensemble (ensemble.weights: auto)"
            if tuning.auto
            else "blended in all the same, as ensemble.weights are given: retrain it, or set "
            "ensemble.weights: auto to leave it out"
        )
        for (model, fold), reason in tuning.flagged.items()
    ]
    warnings += [tuning.problem] if tuning.problem is not None else []
    warnings += edge_warnings({m: chosen[m]["threshold"] for m in chosen}, thresholds[0], thresholds[-1])
    return warnings


def thresholds_json(
    tuning: Tuning, chosen: dict[str, dict[str, float]], grid: ThresholdGrid, weight_step: float
) -> dict[str, Any]:
    """thresholds.json's content: what prediction reads (the threshold, the weights, the networks
    left out) and what the report shows (each member's choice, the flags, the warnings)."""
    return {
        "threshold": chosen[ENSEMBLE]["threshold"],
        "ensemble": chosen[ENSEMBLE],
        "models": {model: chosen[model] for model in tuning.models},
        "weights": tuning.members[ENSEMBLE].weights,
        "weights_chosen": "auto" if tuning.auto else "config",
        "left_out": sorted(tuning.left_out) if tuning.auto else [],
        "flagged": {job_name(model, fold): reason for (model, fold), reason in tuning.flagged.items()},
        "warnings": tuning_warnings(tuning, chosen),
        "grid": {"start": grid.start, "stop": grid.stop, "step": grid.step},
        "weight_step": weight_step,
        "images": len(tuning.folds),
    }


def _describe(weights: Mapping[str, float]) -> str:
    return " ".join(f"{model}={weight:g}" for model, weight in weights.items())


def _weights_of(models: list[str], points: npt.NDArray[np.float64], choice: Choice) -> dict[str, float]:
    return dict(zip(models, points[choice.point].tolist(), strict=True))


def _step(name: str, tuned: Tuned, thresholds: npt.NDArray[np.float64], compared_with: str | None) -> Step:
    weights = _describe(tuned.weights) if len(tuned.weights) > 1 else ""
    return Step(
        name, tuned.at_tuned(), tuned.at_half(), float(thresholds[tuned.column]), compared_with, weights
    )


def plot_curves(
    thresholds: npt.NDArray[np.float64],
    mean_dice: dict[str, npt.NDArray[np.float64]],
    chosen: dict[str, dict[str, float]],
    path: Path,
) -> None:
    """Mean OOF Dice against threshold, one line per model and a bold one for the ensemble."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    for member, curve in mean_dice.items():
        bold = member == ENSEMBLE
        axes.plot(
            thresholds,
            curve,
            linewidth=2.5 if bold else 1.2,
            color="black" if bold else None,
            label=f"{member}: {chosen[member]['dice']:.4f} at {chosen[member]['threshold']:.2f}",
        )
    axes.axvline(chosen[ENSEMBLE]["threshold"], color="black", linestyle=":", linewidth=1)
    axes.set_xlabel("threshold")
    axes.set_ylabel("mean OOF Dice")
    axes.set_title("Out-of-fold Dice against threshold")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower center", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
