"""``carvana <stage> ...``: one subcommand per pipeline stage.

Each subcommand parses its flags, builds the stage's frozen spec (which validates the values) and
calls one library function. The Snakemake rules call these commands; so can a person on a GPU box.
A bad value exits with status 2 and a one-line message; a failed check exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carvana.competition import COMPETITION
from carvana.layout import DatasetPaths

if TYPE_CHECKING:
    from carvana.models.spec import ModelSpec


WEIGHT_HELP = "MODEL=W: that model's ensemble weight (1 when left out); repeat for each"


def _synthesize(args: argparse.Namespace) -> None:
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


def _import_local(args: argparse.Namespace) -> None:
    from carvana.data.local import LocalSpec, import_local

    import_local(LocalSpec(source_dir=args.source_dir, hq=args.hq), args.data_dir)
    print(f"imported {args.source_dir} into {args.data_dir}")


def _download(args: argparse.Namespace) -> None:
    from carvana.data.download import download
    from carvana.kaggle.client import KaggleCLI

    download(KaggleCLI(args.competition), args.file, args.archive_dir)


def _submit(args: argparse.Namespace) -> None:
    import json

    from carvana.atomic import write_text
    from carvana.kaggle.client import KaggleCLI
    from carvana.kaggle.submissions import (
        ScoreWait,
        score_message,
        submit,
        upload_tag,
        wait_for_score,
    )

    if args.dataset == "synthetic":
        raise ValueError(
            "this run's submission is of the generated offline dataset, which Kaggle cannot score: "
            "run the real competition (snakemake --cores all --configfile competition.yaml) and submit that"
        )
    wait = ScoreWait(args.score_wait_s, args.score_poll_s)
    tuned = json.loads(args.thresholds_path.read_text())
    tag = upload_tag()  # finds this upload's row in Kaggle's list of submissions
    message = (
        f"[{tag}] config {' + '.join(args.config) or 'config.yaml'}; "
        f"OOF Dice {tuned['ensemble']['dice']:.5f} at threshold {tuned['threshold']:.2f}"
    )
    cli = KaggleCLI(args.competition)
    line = submit(cli, args.submission_path, message)
    print(line, flush=True)
    if wait.wait_s:
        print(f"waiting up to {wait.wait_s:g} s for Kaggle's score, every {wait.poll_s:g} s", flush=True)
    # From here on the upload has happened: whatever the wait brings, the receipt is written and
    # the job succeeds, so that a rerun does not upload again (Snakemake deletes a failed job's output).
    score = wait_for_score(cli.submissions, tag, wait)
    receipt = {
        "competition": args.competition,
        "file": str(args.submission_path),
        "message": message,
        "kaggle": line,
        "score": score.as_dict(),
    }
    write_text(args.receipt_path, json.dumps(receipt, indent=2) + "\n")
    print(f"receipt: {args.receipt_path}", flush=True)
    warning = score.status != "complete"  # the job still succeeds: see above
    print(score_message(score, args.competition), file=sys.stderr if warning else sys.stdout)


def _validate_data(args: argparse.Namespace) -> None:
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


def _make_folds(args: argparse.Namespace) -> None:
    from carvana.folds import FoldSpec, make_folds

    spec = FoldSpec(n_folds=args.n_folds, seed=args.seed, stratify=args.stratify)
    table = make_folds(DatasetPaths(args.data_dir), spec, args.folds_path)
    sizes = table.groupby("fold")["car_id"].nunique().tolist()
    print(f"{spec.n_folds} folds by car (cars per fold: {sizes}) in {args.folds_path}")


def _model_spec(args: argparse.Namespace) -> ModelSpec:
    """The model's spec from --model-json (what the workflow passes) or its entry in --config-file."""
    from carvana.models.spec import ModelSpec

    if args.model_json:
        spec = ModelSpec.from_json(args.model_json)
        if spec.name != args.model:
            raise ValueError(f"--model is {args.model!r} but --model-json describes {spec.name!r}")
        return spec
    models = _config_models(args.config_file)
    if args.model not in models:
        raise ValueError(f"no model {args.model!r} in {args.config_file}; configured: {', '.join(models)}")
    return ModelSpec.from_entry(args.model, models[args.model])


def _config(config_file: Path) -> dict[str, Any]:
    import yaml

    if not config_file.is_file():
        raise FileNotFoundError(f"config file {config_file} not found")
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{config_file} must hold a mapping of config keys")
    return config


def _config_models(config_file: Path) -> dict[str, Any]:
    models = _config(config_file).get("models") or {}
    if not isinstance(models, dict):
        raise ValueError(f"models in {config_file} must map model names to their settings")
    return models


def _train(args: argparse.Namespace) -> None:
    from carvana.pseudo import RoundTraining
    from carvana.training.job import TrainPaths, train

    spec = _model_spec(args)
    run_dir = args.run_dir or Path("results/models") / spec.name / f"fold{args.fold}"
    pseudo = None
    if args.pseudo_labels:
        pseudo = RoundTraining(
            args.pseudo_labels, args.pseudo_share, args.pseudo_select, args.pseudo_ratio, args.init_weights
        )
    elif args.init_weights:
        raise ValueError("--init-weights starts a pseudo-labelling round: give --pseudo-labels too")
    train(spec, args.fold, TrainPaths(args.data_dir, args.folds_path, run_dir), args.code, pseudo)


def _models(args: argparse.Namespace) -> None:
    from carvana.models.build import build_model, count_parameters
    from carvana.models.spec import model_specs

    specs = model_specs(_config_models(args.config_file))
    rows = [("model", "arch", "input (HxW)", "tile (HxW)", "parameters")]
    for spec in specs:
        arch = f"{spec.arch}/{spec.encoder}" if spec.encoder else spec.arch
        arch += f" x{spec.width:g}" if spec.width != 1 else ""
        tile = "x".join(map(str, spec.tile_size)) if spec.tile_size else "-"
        size = "x".join(map(str, spec.input_size))
        network = build_model(spec, load_pretrained=False)  # counted, not trained: no weight files
        rows.append((spec.name, arch, size, tile, f"{count_parameters(network):,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _fetch_weights(args: argparse.Namespace) -> None:
    from carvana.models.pretrained import WeightSource, file_of_key, files_by_key
    from carvana.models.spec import model_specs

    given: dict[str, Any] = {}  # the config file's mirror settings, which the flags override
    if args.weights:
        files = [file_of_key(key) for key in args.weights]
    else:
        given = _config(args.config_file).get("pretrained_weights") or {}
        files = list(files_by_key(model_specs(_config_models(args.config_file))).values())
        if not files:
            print(f"no model in {args.config_file} asks for pretrained weights: nothing to fetch")
    source = WeightSource(
        args.base_url or given.get("base_url"), args.hf_endpoint or given.get("hf_endpoint")
    )
    for file in files:
        print(file.fetch(source), flush=True)


def _oof(args: argparse.Namespace) -> None:
    import torch

    from carvana.prediction.oof import OofPaths, write_oof
    from carvana.prediction.tta import TTASpec

    torch.set_num_threads(max(1, args.threads - args.workers))
    tta = TTASpec(hflip=args.hflip, vflip=args.vflip, scales=tuple(args.scales))
    paths = OofPaths(args.data_dir, args.folds_path, args.run_dir)
    write_oof(paths, tta, args.batch_size, args.gpu, args.workers)


def _pseudo_labels(args: argparse.Namespace) -> None:
    import torch

    from carvana.prediction.pseudo import PseudoSpec, write_pseudo_labels
    from carvana.prediction.tta import TTASpec

    tta = TTASpec(hflip=args.hflip, vflip=args.vflip, scales=tuple(args.scales))
    spec = PseudoSpec(tta, args.batch_size, args.gpu, args.workers, args.band)
    torch.set_num_threads(max(1, args.threads - args.workers))
    shard = (args.shard, args.shards)
    weights, thresholds = args.weights, args.thresholds_path
    write_pseudo_labels(spec, args.data_dir, weights, thresholds, args.fold, args.out_dir, shard)


def _pseudo_labels_table(args: argparse.Namespace) -> None:
    from carvana.pseudo import gather_labels

    table = gather_labels(args.shard_dir, DatasetPaths(args.data_dir).sample_submission_path, args.out_path)
    print(f"{len(table)} pseudo labels from {len(args.shard_dir)} shards in {args.out_path}")


def _pseudo_rounds(args: argparse.Namespace) -> None:
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


def _tune_threshold(args: argparse.Namespace) -> None:
    from carvana.prediction.weights import parse_weights
    from carvana.tuning.flags import FlagRule
    from carvana.tuning.threshold import ThresholdGrid
    from carvana.tuning.tune import TunePaths, tune

    grid = ThresholdGrid(*args.thresholds)
    paths = TunePaths(args.data_dir, args.folds_path, args.models_dir, args.out_dir)
    flag = FlagRule(args.min_dice, args.max_gap)
    result = tune(
        paths,
        args.model,
        grid,
        parse_weights(args.weight),
        auto=args.auto_weights,
        weight_step=args.weight_step,
        flag=flag,
        threads=args.threads,
    )
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    for model, best in result["models"].items():
        print(f"{model}: OOF Dice {best['dice']:.5f} at threshold {best['threshold']:.2f}")
    weights = " ".join(f"{model}={weight:g}" for model, weight in result["weights"].items())
    left_out = f", without {', '.join(result['left_out'])}" if result["left_out"] else ""
    print(
        f"ensemble ({result['weights_chosen']} weights {weights}{left_out}): OOF Dice "
        f"{result['ensemble']['dice']:.5f} at threshold {result['threshold']:.2f} over "
        f"{result['images']} images; in {args.out_dir}"
    )


def _predict(args: argparse.Namespace) -> None:
    from carvana.prediction.shard import ShardSpec, predict_shard
    from carvana.prediction.tta import TTASpec

    shard = ShardSpec(
        index=args.shard,
        count=args.shards,
        batch_size=args.batch_size,
        tta=TTASpec(hflip=args.hflip, vflip=args.vflip, scales=tuple(args.scales)),
        gpu=args.gpu,
        compile=args.compile,
        workers=args.workers,
    )
    import torch

    torch.set_num_threads(max(1, args.threads - args.workers))
    predict_shard(shard, args.data_dir, args.weights, args.thresholds_path, args.out_path)


def _test_image_size(data_dir: Path) -> tuple[int, int]:
    from carvana.data.images import image_size

    paths = DatasetPaths(data_dir)
    first = _first_test_image(paths.sample_submission_path)
    return image_size(paths.image_path("test", first))


def _first_test_image(sample_submission_path: Path) -> str:
    """The first image named in sample_submission.csv (every test image has its size)."""
    with sample_submission_path.open(encoding="utf-8") as file:
        file.readline()
        return file.readline().split(",", 1)[0]


def _submission(args: argparse.Namespace) -> None:
    from carvana.submission import gather

    rows = gather(args.shard_path, DatasetPaths(args.data_dir).sample_submission_path, args.out_path)
    print(f"{rows} rows from {len(args.shard_path)} shards in {args.out_path}")


def _validate_submission(args: argparse.Namespace) -> None:
    import json

    from carvana.atomic import write_text
    from carvana.submission import check

    size = _test_image_size(args.data_dir)
    report = check(args.submission_path, DatasetPaths(args.data_dir).sample_submission_path, size)
    write_text(args.report_path, json.dumps(report, indent=2) + "\n")
    print(f"submission OK: {report['rows']} rows, every RLE well formed; report in {args.report_path}")


def _score(args: argparse.Namespace) -> None:
    from carvana.submission import score

    result = score(args.submission_path, args.truth_path, _test_image_size(args.data_dir), args.score_path)
    print(
        f"score: mean Dice {result['mean_dice']:.5f} over {result['images']} test images "
        f"(lowest {result['min_dice']:.4f}); in {args.score_path}"
    )


def _report_figures(args: argparse.Namespace) -> None:
    import json

    from carvana.report import ReportPaths, summary_page, training_curves, worst_oof_gallery

    paths = ReportPaths(args.data_dir, args.models_dir, args.tuning_dir, args.out_dir)
    config = json.loads(args.config_json)
    summary_page(config, args.tuning_dir, args.score_path, paths.summary_path)
    training_curves(args.metrics_path, paths.curves_path)
    worst = worst_oof_gallery(paths, args.worst)
    jobs = len(args.metrics_path)
    print(f"report figures in {args.out_dir}: curves of {jobs} jobs, {len(worst)} worst OOF images")


def _with_gpus(args: argparse.Namespace) -> None:
    from carvana.gpus import run_with_gpus

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise ValueError(
            "with-gpus needs a command after --, e.g. carvana with-gpus --gpus 1 -- carvana train ..."
        )
    run_with_gpus(args.gpus, args.asked, command)


def _logged(args: argparse.Namespace) -> None:
    from carvana.job_log import run_logged

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise ValueError("logged needs a command after --, e.g. carvana logged --log L -- carvana train ...")
    status = run_logged(command, args.log)
    if status:
        raise SystemExit(status)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _tta_arguments(parser: argparse.ArgumentParser) -> None:
    """The TTA flags, the same for prediction and for the OOF maps made the way it predicts."""
    parser.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--vflip", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument(
        "--scales", type=float, nargs="+", default=[1.0], help="TTA scales of each model's input size"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carvana", description=__doc__.splitlines()[0])
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    synth = stages.add_parser("synthesize", help="generate the offline dataset in the competition's layout")
    synth.add_argument("--data-dir", type=Path, required=True)
    synth.add_argument("--truth-path", type=Path, required=True, help="CSV of the true test masks")
    synth.add_argument("--train-cars", type=int, default=20)
    synth.add_argument("--test-cars", type=int, default=6)
    synth.add_argument("--image-scale", type=float, default=0.125, help="of 1918x1280, in (0, 1]")
    synth.add_argument("--seed", type=int, default=2017)
    synth.add_argument("--jpeg-quality", type=int, nargs=2, default=(75, 92), metavar=("LOW", "HIGH"))
    synth.add_argument("--workers", type=_positive_int, default=1)
    synth.set_defaults(run=_synthesize)

    local = stages.add_parser("import-local", help="link or unzip hand-downloaded competition files")
    local.add_argument("--source-dir", type=Path, required=True)
    local.add_argument("--data-dir", type=Path, required=True)
    local.add_argument("--hq", action="store_true", help="take train_hq/test_hq images")
    local.set_defaults(run=_import_local)

    fetch = stages.add_parser("download", help="fetch one competition archive with the kaggle CLI")
    fetch.add_argument("--competition", default=COMPETITION)
    fetch.add_argument("--file", required=True, help="e.g. train.zip")
    fetch.add_argument("--archive-dir", type=Path, required=True)
    fetch.set_defaults(run=_download)

    upload = stages.add_parser("submit", help="upload the submission with the kaggle CLI")
    upload.add_argument("--competition", default=COMPETITION)
    upload.add_argument("--submission-path", type=Path, required=True)
    upload.add_argument(
        "--thresholds-path", type=Path, required=True, help="its OOF score goes in the message"
    )
    upload.add_argument(
        "--config", action="append", default=[], help="config file of the run, for the message"
    )
    upload.add_argument("--dataset", default="kaggle", help="the run's dataset; synthetic is refused")
    upload.add_argument("--receipt-path", type=Path, required=True)
    upload.add_argument(
        "--score-wait-s", type=float, default=600.0, help="wait this long for Kaggle's score; 0: do not wait"
    )
    upload.add_argument("--score-poll-s", type=float, default=30.0, help="look for the score this often")
    upload.set_defaults(run=_submit)

    check = stages.add_parser("validate-data", help="check the dataset; write a report")
    check.add_argument("--data-dir", type=Path, required=True)
    check.add_argument("--report-path", type=Path, required=True)
    check.add_argument(
        "--image-size",
        type=_positive_int,
        nargs=2,
        default=None,
        metavar=("HEIGHT", "WIDTH"),
        help="size every image must have; default: the first train image's, shared by all",
    )
    check.add_argument("--train-images", type=_positive_int, default=None, help="exact count expected")
    check.add_argument("--test-images", type=_positive_int, default=None, help="exact count expected")
    check.add_argument("--decode-test", action="store_true", help="decode every test image in full")
    check.add_argument("--workers", type=_positive_int, default=1)
    check.set_defaults(run=_validate_data)

    folds = stages.add_parser("make-folds", help="split the training cars into folds")
    folds.add_argument("--data-dir", type=Path, required=True)
    folds.add_argument("--folds-path", type=Path, required=True)
    folds.add_argument("--n-folds", type=int, default=5)
    folds.add_argument("--seed", type=int, default=2017)
    folds.add_argument("--stratify", default="mask_area")
    folds.set_defaults(run=_make_folds)

    train = stages.add_parser("train", help="train one configured model on one fold")
    train.add_argument("--model", required=True, help="a model name under models: in the config")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--model-json", help="the model's settings as JSON (the workflow passes these)")
    source.add_argument(
        "--config-file", type=Path, default=Path("config.yaml"), help="read the model from here"
    )
    train.add_argument("--fold", type=int, required=True, help="the held-out fold, from 0")
    train.add_argument("--data-dir", type=Path, required=True)
    train.add_argument("--folds-path", type=Path, required=True)
    train.add_argument(
        "--run-dir", type=Path, default=None, help="default: results/models/<model>/fold<fold>"
    )
    train.add_argument(
        "--code", default="", help="digest of the training code: a checkpoint of other code is not resumed"
    )
    train.add_argument(
        "--pseudo-labels",
        type=Path,
        default=None,
        help="a fold's pseudo labels folder (its labels.csv lists the masks): add its test images",
    )
    train.add_argument(
        "--pseudo-share", type=float, default=1.0, help="share of the labelled test images taken"
    )
    train.add_argument("--pseudo-select", choices=("confident", "random"), default="confident")
    train.add_argument(
        "--pseudo-ratio", type=float, default=1.0, help="pseudo-labelled images per epoch, per training image"
    )
    train.add_argument(
        "--init-weights", type=Path, default=None, help="start from this weights.pt (the round before's)"
    )
    train.set_defaults(run=_train)

    pseudo = stages.add_parser(
        "pseudo-labels", help="label the test images with one fold's networks, for the next round"
    )
    pseudo.add_argument("--fold", type=int, required=True, help="every network must be of this fold")
    pseudo.add_argument("--shard", type=_positive_int, default=1, help="from 1: this slice of the test set")
    pseudo.add_argument("--shards", type=_positive_int, default=1)
    pseudo.add_argument("--data-dir", type=Path, required=True)
    pseudo.add_argument("--weights", type=Path, nargs="+", required=True, help="the fold's weights.pt files")
    pseudo.add_argument(
        "--thresholds-path", type=Path, required=True, help="thresholds.json of the round before's tuning"
    )
    pseudo.add_argument(
        "--out-dir", type=Path, required=True, help="the shard's folder: <img>.png and labels.csv, made whole"
    )
    pseudo.add_argument(
        "--band", type=float, default=0.2, help="a pixel this near the threshold is uncertain"
    )
    pseudo.add_argument("--batch-size", type=_positive_int, default=8)
    _tta_arguments(pseudo)
    pseudo.add_argument("--gpu", type=int, default=1, help="0: CPU even where CUDA is present")
    pseudo.add_argument(
        "--threads", type=_positive_int, default=1, help="CPU threads: the networks take what workers leave"
    )
    pseudo.add_argument("--workers", type=_non_negative_int, default=0, help="loader processes (0: a thread)")
    pseudo.set_defaults(run=_pseudo_labels)

    table = stages.add_parser("pseudo-labels-table", help="gather one fold's label shards into its table")
    table.add_argument(
        "--shard-dir", type=Path, nargs="+", required=True, help="the shards' folders, in order"
    )
    table.add_argument("--data-dir", type=Path, required=True)
    table.add_argument("--out-path", type=Path, required=True, help="the fold's labels.csv")
    table.set_defaults(run=_pseudo_labels_table)

    rounds = stages.add_parser("pseudo-rounds", help="compare the pseudo-labelling rounds")
    rounds.add_argument(
        "--round-dir", type=Path, nargs="+", required=True, help="each round's folder, round 0 first"
    )
    rounds.add_argument("--out-path", type=Path, required=True, help="the table's CSV")
    rounds.set_defaults(run=_pseudo_rounds)

    oof = stages.add_parser("oof", help="one training job's held-out images through the prediction path")
    oof.add_argument("--data-dir", type=Path, required=True)
    oof.add_argument("--folds-path", type=Path, required=True)
    oof.add_argument(
        "--run-dir",
        type=Path,
        required=True,
        help="the job's folder: reads weights.pt, writes oof/ and oof_plain/",
    )
    oof.add_argument("--batch-size", type=_positive_int, default=8)
    _tta_arguments(oof)
    oof.add_argument("--gpu", type=int, default=1, help="0: CPU even where CUDA is present")
    oof.add_argument(
        "--threads", type=_positive_int, default=1, help="CPU threads: the network takes what workers leave"
    )
    oof.add_argument(
        "--workers", type=_non_negative_int, default=0, help="loader processes (0: a thread of the job)"
    )
    oof.set_defaults(run=_oof)

    tune = stages.add_parser("tune-threshold", help="choose the ensemble's weights and threshold on OOF maps")
    tune.add_argument("--data-dir", type=Path, required=True)
    tune.add_argument("--folds-path", type=Path, required=True)
    tune.add_argument("--models-dir", type=Path, required=True, help="holds <model>/fold<k>/oof{,_plain}/")
    tune.add_argument("--model", action="append", required=True, help="an ensemble member; repeat for each")
    tune.add_argument(
        "--thresholds", type=float, nargs=3, default=(0.30, 0.70, 0.01), metavar=("START", "STOP", "STEP")
    )
    tune.add_argument("--out-dir", type=Path, required=True)
    tune.add_argument("--weight", action="append", default=[], help=WEIGHT_HELP)
    tune.add_argument(
        "--auto-weights", action="store_true", help="search the weights on a simplex grid, with the threshold"
    )
    tune.add_argument("--weight-step", type=float, default=0.1, help="the grid's step; must divide 1")
    tune.add_argument("--min-dice", type=float, default=0.5, help="a network below this OOF Dice is flagged")
    tune.add_argument(
        "--max-gap", type=float, default=0.1, help="flag a network this far below its model's other folds"
    )
    tune.add_argument(
        "--threads", type=_positive_int, default=1, help="processes that read and score the maps"
    )
    tune.set_defaults(run=_tune_threshold)

    predict = stages.add_parser("predict", help="one shard of the test set through the TTA ensemble")
    predict.add_argument("--shard", type=_positive_int, required=True, help="from 1")
    predict.add_argument("--shards", type=_positive_int, required=True)
    predict.add_argument("--data-dir", type=Path, required=True)
    predict.add_argument("--weights", type=Path, nargs="+", required=True, help="weights.pt of every member")
    predict.add_argument(
        "--thresholds-path", type=Path, required=True, help="thresholds.json of tuning: threshold, weights"
    )
    predict.add_argument("--out-path", type=Path, required=True, help="CSV of this shard's rows")
    predict.add_argument("--batch-size", type=_positive_int, default=8)
    _tta_arguments(predict)
    predict.add_argument("--gpu", type=int, default=1, help="0: CPU even where CUDA is present")
    predict.add_argument(
        "--threads", type=_positive_int, default=1, help="CPU threads: the networks take what workers leave"
    )
    predict.add_argument("--compile", action="store_true", help="torch.compile each network first")
    predict.add_argument(
        "--workers", type=_non_negative_int, default=0, help="loader processes (0: a thread of the shard)"
    )
    predict.set_defaults(run=_predict)

    submission = stages.add_parser("submission", help="gather the shards in sample_submission order")
    submission.add_argument("--shard-path", type=Path, nargs="+", required=True)
    submission.add_argument("--data-dir", type=Path, required=True)
    submission.add_argument("--out-path", type=Path, required=True, help="submission.csv.gz")
    submission.set_defaults(run=_submission)

    check_sub = stages.add_parser("validate-submission", help="check a submission as Kaggle would")
    check_sub.add_argument("--submission-path", type=Path, required=True)
    check_sub.add_argument("--data-dir", type=Path, required=True)
    check_sub.add_argument("--report-path", type=Path, required=True)
    check_sub.set_defaults(run=_validate_submission)

    score = stages.add_parser("score", help="mean Dice against the true test masks (generated data only)")
    score.add_argument("--submission-path", type=Path, required=True)
    score.add_argument("--truth-path", type=Path, required=True)
    score.add_argument("--data-dir", type=Path, required=True)
    score.add_argument("--score-path", type=Path, required=True)
    score.set_defaults(run=_score)

    figures = stages.add_parser("report-figures", help="training curves and the worst OOF images")
    figures.add_argument("--data-dir", type=Path, required=True)
    figures.add_argument("--models-dir", type=Path, required=True, help="<models-dir>/<model>/fold<k>/")
    figures.add_argument("--tuning-dir", type=Path, required=True, help="thresholds.json, oof_images.csv")
    figures.add_argument("--out-dir", type=Path, required=True)
    figures.add_argument(
        "--metrics-path", type=Path, nargs="+", required=True, help="<model>/fold<k>/metrics.csv of each job"
    )
    figures.add_argument("--worst", type=_positive_int, default=10, help="how many OOF images to show")
    figures.add_argument("--config-json", default="{}", help="the run's config, shown in the summary")
    figures.add_argument("--score-path", type=Path, default=None, help="score.json of the offline run")
    figures.set_defaults(run=_report_figures)

    gpus = stages.add_parser(
        "with-gpus", help="lease free GPUs, set CUDA_VISIBLE_DEVICES and run a command (a GPU job)"
    )
    gpus.add_argument("--gpus", type=int, required=True, help="GPUs granted ({resources.gpu}); 0: the CPU")
    gpus.add_argument("--asked", type=int, default=None, help="GPUs the model asks for: warned if more")
    gpus.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARG...")
    gpus.set_defaults(run=_with_gpus)

    logged = stages.add_parser(
        "logged", help="run a job's command with its output in its log; print its last line (every rule)"
    )
    logged.add_argument("--log", type=Path, required=True, help="the job's log file ({log}), replaced")
    logged.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARG...")
    logged.set_defaults(run=_logged)

    weights = stages.add_parser(
        "fetch-weights", help="fetch the ImageNet weights that models start from into the libraries' caches"
    )
    chosen = weights.add_mutually_exclusive_group()
    chosen.add_argument(
        "--weights", action="append", default=[], help="a file by key: vgg11, smp-<encoder>; repeat for each"
    )
    chosen.add_argument(
        "--config-file",
        type=Path,
        default=Path("config.yaml"),
        help="fetch what its models ask for, from its pretrained_weights mirror (the file alone, not merged)",
    )
    weights.add_argument("--base-url", default=None, help="of torchvision's files (a mirror's)")
    weights.add_argument("--hf-endpoint", default=None, help="the Hugging Face hub or a mirror of it")
    weights.set_defaults(run=_fetch_weights)

    models = stages.add_parser("models", help="list the configured models with their parameter counts")
    models.add_argument("--config-file", type=Path, default=Path("config.yaml"))
    models.set_defaults(run=_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], None] = args.run
    from carvana.failures import JobError
    from carvana.kaggle.client import KaggleError
    from carvana.models.pretrained import PretrainedError

    try:
        run(args)
    except (KaggleError, JobError, PretrainedError) as error:
        print(f"carvana {args.stage}: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as error:
        from carvana.data.validate import DataValidationError
        from carvana.submission import SubmissionError

        print(f"carvana {args.stage}: {error}", file=sys.stderr)
        return 1 if isinstance(error, DataValidationError | SubmissionError) else 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
