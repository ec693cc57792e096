"""``carvana report-figures``: the HTML report's summary page, training curves and worst OOF images."""

from __future__ import annotations

import argparse
from pathlib import Path

from carvana.stages._args import positive_int, schema_default

HELP = "training curves and the worst OOF images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--models-dir", type=Path, required=True, help="<models-dir>/<model>/fold<k>/")
    parser.add_argument("--tuning-dir", type=Path, required=True, help="thresholds.json, oof_images.csv")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument(
        "--metrics-path", type=Path, nargs="+", required=True, help="<model>/fold<k>/metrics.csv of each job"
    )
    parser.add_argument(
        "--worst",
        type=positive_int,
        default=schema_default("report.worst_images"),
        help="how many OOF images to show",
    )
    parser.add_argument("--config-json", default="{}", help="the run's config, shown in the summary")
    parser.add_argument("--score-path", type=Path, default=None, help="score.json of the offline run")


def run(args: argparse.Namespace) -> None:
    import json

    from carvana.report import ReportPaths, summary_page, training_curves, worst_oof_gallery

    paths = ReportPaths(args.data_dir, args.models_dir, args.tuning_dir, args.out_dir)
    config = json.loads(args.config_json)
    summary_page(config, args.tuning_dir, args.score_path, paths.summary_path)
    training_curves(args.metrics_path, paths.curves_path)
    worst = worst_oof_gallery(paths, args.worst)
    jobs = len(args.metrics_path)
    print(f"report figures in {args.out_dir}: curves of {jobs} jobs, {len(worst)} worst OOF images")
