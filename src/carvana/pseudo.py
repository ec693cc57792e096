"""Pseudo labels as a training job reads them: their files, their table and which to take.

(``carvana.prediction.pseudo`` writes them; this module stays free of the networks, so that the
training code's digest does not change with the prediction code.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from carvana import schema
from carvana.atomic import write_text

LABELS_TABLE = "labels.csv"  # img, area, uncertain (and, gathered, mask): written last
SELECTIONS = ("confident", "random")


def label_name(img: str) -> str:
    """A test image's label file: ``<carid>_<NN>.jpg`` -> ``<carid>_<NN>.png``."""
    return Path(img).with_suffix(".png").name


def gather_labels(shard_dirs: list[Path], sample_submission_path: Path, out_path: Path) -> pd.DataFrame:
    """One fold's labels table from its shards' folders (each with its masks and labels.csv):
    img, area, uncertain and ``mask``, the mask's file relative to ``out_path``'s folder, in
    sample_submission order; written to ``out_path``, whole or not at all. Refuses shards that do
    not hold every test image exactly once."""
    parts = []
    for folder in shard_dirs:
        table = read_labels_table(folder)
        relative = folder.relative_to(out_path.parent) if folder.is_relative_to(out_path.parent) else folder
        table["mask"] = [str(relative / label_name(img)) for img in table["img"]]
        parts.append(table)
    gathered = pd.concat(parts, ignore_index=True)
    expected = pd.read_csv(sample_submission_path, usecols=["img"])["img"]
    if gathered["img"].tolist() != expected.tolist():
        missing = len(set(expected) - set(gathered["img"]))
        repeated = int(gathered["img"].duplicated().sum())
        raise ValueError(
            f"the {len(shard_dirs)} label shards hold {gathered['img'].nunique()} distinct of "
            f"{len(expected)} test images ({missing} missing, {repeated} repeated), or not in "
            "sample_submission order: rerun the pseudo labels shards"
        )
    write_text(out_path, gathered.to_csv(index=False, float_format="%.6f"))
    return gathered


def select_pseudo(table: pd.DataFrame, share: float, how: str, seed: int) -> list[str]:
    """The labelled test images a round trains on: ``share`` of them (rounded, at least one),
    those of least uncertain share (``confident``; ties by name) or drawn at random with
    ``seed``. Empty masks are never taken: the test set has a car in every image."""
    if not 0 < share <= 1:
        raise ValueError(f"pseudo.share must be in (0, 1], got {share}")
    if how not in SELECTIONS:
        raise ValueError(f"pseudo.select must be one of {SELECTIONS}, got {how!r}")
    usable = table[table["area"] > 0]
    if usable.empty:
        raise ValueError("every pseudo label is an empty mask: the round before learnt nothing to label with")
    count = max(1, round(share * len(usable)))
    if how == "confident":
        ranked = usable.sort_values(["uncertain", "img"], kind="stable")
        return sorted(ranked["img"].head(count))
    rng = np.random.default_rng(seed)
    return sorted(usable["img"].to_numpy()[rng.permutation(len(usable))[:count]].tolist())


def read_labels_table(labels_dir: Path) -> pd.DataFrame:
    """labels.csv of a labels folder (a shard's, or a fold's gathered table), or an error that
    says how to make it."""
    path = labels_dir / LABELS_TABLE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the pseudo labels job did not finish; rerun the workflow to make it"
        )
    return pd.read_csv(path)


@dataclass(frozen=True)
class RoundTraining:
    """How a pseudo-labelling round's training job adds the test images: the labels job's
    folder, which of its labels to take (``select_pseudo``), how many an epoch draws per real
    training image, and the weights to start from (the round before's, or None: from scratch)."""

    labels_dir: Path
    share: float = schema.default("pseudo.share")
    select: str = schema.default("pseudo.select")
    ratio: float = schema.default("pseudo.ratio")
    init_weights: Path | None = None

    def __post_init__(self) -> None:
        if self.ratio <= 0:
            raise ValueError(f"pseudo.ratio must be above 0, got {self.ratio}")

    def chosen(self, seed: int) -> list[tuple[str, Path]]:
        """The labelled test images this job may draw from, each with its mask's file."""
        table = read_labels_table(self.labels_dir)
        if "mask" not in table:
            raise ValueError(f"{self.labels_dir / LABELS_TABLE} lists no mask files: rerun its pseudo labels")
        masks = dict(zip(table["img"], table["mask"], strict=True))
        images = select_pseudo(table, self.share, self.select, seed)
        return [(img, self.labels_dir / masks[img]) for img in images]

    def per_epoch(self, real: int) -> int:
        """Pseudo-labelled images each epoch draws beside ``real`` training images."""
        return max(1, round(self.ratio * real))


def rounds_table(round_dirs: list[Path]) -> pd.DataFrame:
    """One row per round (its folder: results/, results/pseudo/round<r>/): the ensemble's OOF
    Dice at its tuned threshold, that threshold, the offline score where there is one (the
    generated dataset), and the seconds its jobs took, summed over their benchmarks (pseudo
    labels, training, OOF maps, tuning and prediction), with each figure's change from round 0."""
    rows = []
    for number, folder in enumerate(round_dirs):
        tuned = json.loads((folder / "tuning" / "thresholds.json").read_text())
        score_path = folder / "score.json"
        score = json.loads(score_path.read_text())["mean_dice"] if score_path.is_file() else float("nan")
        rows.append(
            {
                "round": number,
                "oof_dice": float(tuned["ensemble"]["dice"]),
                "threshold": float(tuned["threshold"]),
                "score": float(score),
                "job_s": round_job_seconds(folder / "benchmarks"),
            }
        )
    table = pd.DataFrame(rows)
    for column in ("oof_dice", "score", "job_s"):
        table[f"{column}_vs_round0"] = table[column] - table[column].iloc[0]
    return table


ROUND_STAGES = ("pseudo_labels/*.tsv", "train/*.tsv", "oof/*.tsv", "tune_threshold.tsv", "predict/*.tsv")


def round_job_seconds(benchmarks_dir: Path) -> float:
    """The wall seconds (Snakemake's ``s`` column) of a round's network and tuning jobs."""
    files = [path for pattern in ROUND_STAGES for path in sorted(benchmarks_dir.glob(pattern))]
    return float(sum(pd.read_csv(path, sep="\t")["s"].sum() for path in files))
