"""``carvana validate-data``: every file of the dataset checked, a report written; any bad file
fails the stage."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.layout import DatasetPaths
from carvana.stages._args import positive_int

HELP = "check the dataset; write a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--report-path", type=Path, required=True)
    parser.add_argument(
        "--image-size",
        type=positive_int,
        nargs=2,
        default=None,
        metavar=("HEIGHT", "WIDTH"),
        help="size every image must have; default: the first train image's, shared by all",
    )
    parser.add_argument("--train-images", type=positive_int, default=None, help="exact count expected")
    parser.add_argument("--test-images", type=positive_int, default=None, help="exact count expected")
    parser.add_argument("--decode-test", action="store_true", help="decode every test image in full")
    parser.add_argument("--workers", type=positive_int, default=1, help="processes that read the images")


def run(args: argparse.Namespace) -> None:
    from carvana.data.validate import ValidationSpec, validate, write_report

    spec = ValidationSpec(
        image_size=(args.image_size[0], args.image_size[1]) if args.image_size else None,
        train_images=args.train_images,
        test_images=args.test_images,
        decode_test=args.decode_test,
        workers=args.workers,
    )
    report = validate(DatasetPaths(args.data_dir), spec)
    write_report(report, args.report_path)
    print(
        f"dataset OK: {report['train_images']} train images of {report['train_cars']} cars, "
        f"{report['test_images']} test images of {report['test_cars']} cars; report in {args.report_path}"
    )
