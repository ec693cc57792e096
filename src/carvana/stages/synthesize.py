"""``carvana synthesize``: the offline dataset, generated in the competition's layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.competition import COMPETITION_SIZE_TEXT
from carvana.stages._args import positive_int, schema_default

HELP = "generate the offline dataset in the competition's layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--truth-path", type=Path, required=True, help="CSV of the true test masks")
    parser.add_argument("--train-cars", type=int, default=schema_default("synthetic.train_cars"))
    parser.add_argument("--test-cars", type=int, default=schema_default("synthetic.test_cars"))
    parser.add_argument(
        "--image-scale",
        type=float,
        default=schema_default("synthetic.image_scale"),
        help=f"of {COMPETITION_SIZE_TEXT}, in (0, 1]",
    )
    parser.add_argument("--seed", type=int, default=schema_default("synthetic.seed"))
    parser.add_argument(
        "--jpeg-quality",
        type=int,
        nargs=2,
        default=schema_default("synthetic.jpeg_quality"),
        metavar=("LOW", "HIGH"),
    )
    parser.add_argument("--workers", type=positive_int, default=1, help="processes that draw the cars")


def run(args: argparse.Namespace) -> None:
    from carvana.data.synthetic import SyntheticSpec, generate
    from carvana.layout import scaled_size

    spec = SyntheticSpec(
        train_cars=args.train_cars,
        test_cars=args.test_cars,
        image_size=scaled_size(args.image_scale),
        seed=args.seed,
        jpeg_quality=(args.jpeg_quality[0], args.jpeg_quality[1]),
        workers=args.workers,
    )
    generate(spec, args.data_dir, args.truth_path)
    height, width = spec.image_size
    print(
        f"synthesized {spec.train_cars} train and {spec.test_cars} test cars "
        f"({16 * spec.train_cars} + {16 * spec.test_cars} images, {width}x{height} WxH) in {args.data_dir}"
    )
