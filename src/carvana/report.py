"""Pages for the HTML report (``snakemake --report``): the run's summary, training curves and the
worst OOF images.

``summary_page`` writes one self-contained HTML page: the run's config, the tuned threshold and
weights, OOF Dice per model and fold, the warnings of tuning (networks that learnt nothing,
thresholds at the edge of the grid), the ablation table, and the offline score when there is one.

``training_curves`` draws each model's ``metrics.csv`` per fold: training and held-out loss, and
held-out Dice, against epoch. ``worst_oof_gallery`` picks the training images with the lowest
ensemble OOF Dice (``oof_images.csv`` of the tuning stage) and draws, for each, the image, its
true mask and the ensemble's OOF prediction over it: the same weighted mean of the models' OOF
maps and the same threshold as tuning chose, so each panel's Dice is the one tuning scored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pandas as pd

from carvana import rle
from carvana.atomic import atomic_path, write_text
from carvana.data.images import read_image
from carvana.layout import DatasetPaths
from carvana.prediction.weights import job_name
from carvana.tuning.blend import image_levels
from carvana.tuning.oof_set import ENSEMBLE
from carvana.tuning.scan import oof_path, read_oof
from carvana.tuning.threshold import first_level

TRUTH_COLOUR = (0, 255, 0)  # RGB: the true mask's outline
MISSED_COLOUR = (255, 0, 255)  # truth the prediction missed
EXTRA_COLOUR = (255, 140, 0)  # prediction outside the truth


@dataclass(frozen=True)
class ReportPaths:
    data_dir: Path
    models_dir: Path
    tuning_dir: Path
    out_dir: Path

    @property
    def summary_path(self) -> Path:
        return self.out_dir / "summary.html"

    @property
    def curves_path(self) -> Path:
        return self.out_dir / "training_curves.png"

    @property
    def gallery_dir(self) -> Path:
        return self.out_dir / "worst_oof"


def summary_page(config: dict[str, Any], tuning_dir: Path, score_path: Path | None, path: Path) -> None:
    """The run at a glance, as HTML with no outside resources: config, OOF Dice, score."""
    import html

    import yaml

    tuned = json.loads((tuning_dir / "thresholds.json").read_text())
    scores = pd.read_csv(tuning_dir / "oof_scores.csv", dtype={"fold": str})
    table = scores.pivot(index="model", columns="fold", values="dice")
    members = [*tuned["models"], ENSEMBLE]
    folds = ["all", *sorted((c for c in table.columns if c != "all"), key=int)]
    table = table.loc[members, folds]
    header = "".join(f"<th>{html.escape('all folds' if f == 'all' else f'fold {f}')}</th>" for f in folds)
    rows = "".join(
        f"<tr><th>{html.escape(member)}</th><td>{tuned['weights'].get(member, '')}</td>"
        + f"<td>{(tuned['models'].get(member) or tuned['ensemble'])['threshold']:.2f}</td>"
        + "".join(f"<td>{table.loc[member, fold]:.4f}</td>" for fold in folds)
        + "</tr>"
        for member in members
    )
    warnings = "".join(f"<li>{html.escape(text)}</li>" for text in tuned.get("warnings", []))
    warned = f'<h2>Warnings</h2><ul id="warnings">{warnings}</ul>' if warnings else ""
    ablation = ablation_html(pd.read_csv(tuning_dir / "ablation.csv", keep_default_na=False))
    score = ""
    if score_path is not None:
        result = json.loads(score_path.read_text())
        score = (
            f"<h2>Score</h2><p>Mean Dice of the submission against the generated test masks: "
            f"<b>{result['mean_dice']:.5f}</b> over {result['images']} images.</p>"
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Run summary</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}} pre{{background:#f4f4f4;padding:1em}}</style>
</head><body>
<h2>Out-of-fold Dice</h2>
<p>Each model at its own best threshold; the ensemble (the weighted mean of the models' maps) at
{tuned["threshold"]:.2f}, the threshold prediction uses. {tuned["images"]} training images.</p>
<table id="oof-dice"><tr><th>model</th><th>weight</th><th>threshold</th>{header}</tr>{rows}</table>
{warned}
<h2>What each step buys</h2>
<p>Out-of-fold Dice of each step of the recipe (results/tuning/ablation.csv): over all images,
and the mean &plusmn; standard deviation of the folds' means, at the step's tuned threshold and at
0.5. The gain is against the step named, with its standard deviation over folds: a gain within
it is fold noise. Images improved or worsened count changes above 1e-6.</p>
{ablation}
{score}
<h2>Config</h2>
<pre id="config">{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>
</body></html>
"""
    write_text(path, page)


def ablation_html(table: pd.DataFrame) -> str:
    """The ablation table as an HTML table (step, weights, threshold, Dice, gain, images)."""
    import html

    def number(value: object, digits: int = 4) -> str:
        if value == "" or value is None:  # an empty cell, read as text
            return ""
        figure = float(str(value))
        return "" if figure != figure else f"{figure:.{digits}f}"  # NaN: nothing to show

    header = (
        "<tr><th>step</th><th>weights</th><th>threshold</th><th>Dice</th><th>folds</th>"
        "<th>Dice at 0.5</th><th>folds at 0.5</th><th>against</th><th>gain</th>"
        "<th>improved / worsened</th></tr>"
    )
    rows = "".join(
        f"<tr><th>{html.escape(str(row['step']))}</th><td>{html.escape(str(row['weights']))}</td>"
        f"<td>{number(row['threshold'], 2) or 'per fold'}</td><td>{number(row['dice'])}</td>"
        f"<td>{number(row['dice_fold_mean'])} &plusmn; {number(row['dice_fold_std'])}</td>"
        f"<td>{number(row['dice_at_0.5'])}</td>"
        f"<td>{number(row['dice_at_0.5_fold_mean'])} &plusmn; {number(row['dice_at_0.5_fold_std'])}</td>"
        f"<td>{html.escape(str(row['compared_with']))}</td>"
        + (
            f"<td>{float(row['gain']):+.4f} &plusmn; {number(row['gain_fold_std'])}</td>"
            f"<td>{row['improved']} / {row['worsened']}</td>"
            if row["compared_with"]
            else "<td></td><td></td>"
        )
        + "</tr>"
        for row in table.to_dict("records")
    )
    return f'<table id="ablation">{header}{rows}</table>'


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(metrics_paths: list[Path], path: Path) -> None:
    """One row of three plots per model (train loss, held-out loss, held-out Dice), a line per
    fold, from the jobs' ``<model>/fold<k>/metrics.csv`` (models in the order given)."""
    runs: dict[str, list[Path]] = {}
    for metrics_path in metrics_paths:
        runs.setdefault(metrics_path.parent.parent.name, []).append(metrics_path)
    if not runs:
        raise ValueError("no metrics.csv given: run the training jobs first")
    plt = _pyplot()
    figure, axes = plt.subplots(len(runs), 3, figsize=(12, 3 * len(runs)), dpi=90, squeeze=False)
    for row, (model, paths) in enumerate(runs.items()):
        for metrics_path in sorted(paths, key=lambda p: _fold(p.parent.name)):
            metrics = pd.read_csv(metrics_path)
            label = metrics_path.parent.name
            for column, name in enumerate(("train_loss", "val_loss", "val_dice")):
                axes[row, column].plot(metrics["epoch"], metrics[name], marker=".", label=label)
        for column, name in enumerate(("training loss", "held-out loss", "held-out Dice at 0.5")):
            axes[row, column].set_title(f"{model}: {name}", fontsize=10)
            axes[row, column].set_xlabel("epoch")
            axes[row, column].grid(alpha=0.3)
        axes[row, 2].legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path)


def _fold(name: str) -> int:
    match = re.fullmatch(r"fold(\d+)", name)
    if match is None:
        raise ValueError(f"{name}: not a fold folder (fold<k>)")
    return int(match.group(1))


def _save(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    _pyplot().close(figure)


def ensemble_oof_mask(
    models_dir: Path,
    img: str,
    fold: int,
    weights: dict[str, float],
    threshold: float,
    left_out: frozenset[str] = frozenset(),
) -> npt.NDArray[np.uint8]:
    """The ensemble's OOF prediction of ``img``, 0/1 of shape (height, width), exactly as the
    tuning stage scores it (its weighted levels of the networks not ``left_out``, car from the
    threshold's first level up)."""
    models = list(weights)
    maps = [
        None if job_name(model, fold) in left_out else read_oof(oof_path(models_dir, model, fold, img))
        for model in models
    ]
    levels, scale = image_levels(maps, [weights[model] for model in models])
    return np.asarray(levels >= first_level(threshold, scale), dtype=np.uint8)


def overlay(
    image: npt.NDArray[np.uint8], truth: npt.NDArray[np.uint8], prediction: npt.NDArray[np.uint8]
) -> npt.NDArray[np.uint8]:
    """``image`` (H, W, 3) RGB with missed truth and extra prediction tinted, truth outlined."""
    shown = image.copy()
    for mask, colour in ((truth & (1 - prediction), MISSED_COLOUR), (prediction & (1 - truth), EXTRA_COLOUR)):
        where = mask.astype(bool)
        shown[where] = (0.45 * shown[where] + 0.55 * np.array(colour)).astype(np.uint8)
    contours, _ = cv2.findContours(truth, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(shown, contours, -1, TRUTH_COLOUR, 1)
    return shown


def worst_oof_gallery(paths: ReportPaths, count: int) -> list[str]:
    """Write ``count`` PNGs (rank, image, Dice in the name) of the lowest ensemble OOF Dice;
    return the images, worst first."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    scores = pd.read_csv(paths.tuning_dir / "oof_images.csv")
    tuned = json.loads((paths.tuning_dir / "thresholds.json").read_text())
    weights = {model: float(weight) for model, weight in tuned["weights"].items()}
    left_out = frozenset(tuned.get("left_out", []))
    worst = scores.sort_values([ENSEMBLE, "img"]).head(count)
    dataset = DatasetPaths(paths.data_dir)
    truth_rle = pd.read_csv(dataset.train_masks_csv_path, dtype=str, keep_default_na=False).set_index("img")[
        "rle_mask"
    ]
    plt = _pyplot()
    with atomic_path(paths.gallery_dir) as folder:
        folder.mkdir()
        for rank, (img, fold, dice) in enumerate(
            zip(worst["img"], worst["fold"], worst[ENSEMBLE], strict=True), 1
        ):
            image = read_image(dataset.train_dir / str(img))
            truth = rle.decode(truth_rle[img], image.shape[:2])
            prediction = ensemble_oof_mask(
                paths.models_dir, str(img), int(fold), weights, tuned["threshold"], left_out
            )
            figure, axes = plt.subplots(1, 3, figsize=(12, 3), dpi=90)
            panels = [
                (image, "image"),
                (truth * 255, "true mask"),
                (overlay(image, truth, prediction), "prediction: magenta missed, orange extra"),
            ]
            for axis, (picture, title) in zip(axes, panels, strict=True):
                axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
                axis.set_title(title, fontsize=9)
                axis.axis("off")
            figure.suptitle(
                f"#{rank} {img} (fold {fold}): ensemble OOF Dice {dice:.4f} at {tuned['threshold']:.2f}",
                fontsize=10,
            )
            figure.tight_layout()
            _save(figure, folder / f"{rank:02d}_{str(img).removesuffix('.jpg')}_dice{dice:.4f}.png")
    return list(worst["img"])
