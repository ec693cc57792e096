"""``carvana validate-submission``: the submission checked as Kaggle would, a report written."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.layout import DatasetPaths

HELP = "check a submission as Kaggle would"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--submission-path", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--report-path", type=Path, required=True)


def run(args: argparse.Namespace) -> None:
    import json

    from carvana.atomic import write_text
    from carvana.submission import check, size_of_test_images

    paths = DatasetPaths(args.data_dir)
    report = check(args.submission_path, paths.sample_submission_path, size_of_test_images(paths))
    write_text(args.report_path, json.dumps(report, indent=2) + "\n")
    print(f"submission OK: {report['rows']} rows, every RLE well formed; report in {args.report_path}")
