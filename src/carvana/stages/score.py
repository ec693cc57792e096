"""``carvana score``: the submission's mean Dice against the true test masks (the generated
dataset only: the competition's are secret)."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.layout import DatasetPaths

HELP = "mean Dice against the true test masks (generated data only)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--submission-path", type=Path, required=True)
    parser.add_argument("--truth-path", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--score-path", type=Path, required=True)


def run(args: argparse.Namespace) -> None:
    from carvana.submission import score, size_of_test_images

    size = size_of_test_images(DatasetPaths(args.data_dir))
    result = score(args.submission_path, args.truth_path, size, args.score_path)
    print(
        f"score: mean Dice {result['mean_dice']:.5f} over {result['images']} test images "
        f"(lowest {result['min_dice']:.4f}); in {args.score_path}"
    )
