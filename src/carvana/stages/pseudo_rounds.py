"""``carvana pseudo-rounds``: the pseudo-labelling rounds compared, round 0 first."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "compare the pseudo-labelling rounds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--round-dir", type=Path, nargs="+", required=True, help="each round's folder, round 0 first"
    )
    parser.add_argument("--out-path", type=Path, required=True, help="the table's CSV")


def run(args: argparse.Namespace) -> None:
    from carvana.atomic import atomic_path
    from carvana.pseudo import rounds_table

    table = rounds_table(args.round_dir)
    with atomic_path(args.out_path) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6f")
    for row in table.itertuples():
        print(
            f"round {row.round}: OOF Dice {row.oof_dice:.5f} ({row.oof_dice_vs_round0:+.5f}), "
            f"score {row.score:.5f} ({row.score_vs_round0:+.5f}), jobs {row.job_s:.0f} s"
        )
