"""``carvana submit``: the submission uploaded with the kaggle CLI, then Kaggle's score awaited
and written with the upload's receipt."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carvana.stages._args import schema_default

HELP = "upload the submission with the kaggle CLI"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--competition", default=schema_default("kaggle.competition"))
    parser.add_argument("--submission-path", type=Path, required=True)
    parser.add_argument(
        "--thresholds-path", type=Path, required=True, help="its OOF score goes in the message"
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="config file of the run, for the message; repeat for each",
    )
    parser.add_argument("--dataset", required=True, help="the run's dataset; synthetic is refused")
    parser.add_argument("--receipt-path", type=Path, required=True)
    parser.add_argument(
        "--score-wait-s",
        type=float,
        default=schema_default("kaggle.score_wait_s"),
        help="wait this long for Kaggle's score; 0: do not wait",
    )
    parser.add_argument(
        "--score-poll-s",
        type=float,
        default=schema_default("kaggle.score_poll_s"),
        help="look for the score this often",
    )


def run(args: argparse.Namespace) -> None:
    import json

    from carvana.atomic import write_text
    from carvana.kaggle.client import KaggleCLI
    from carvana.kaggle.submissions import ScoreWait, score_message, submit, upload_tag, wait_for_score

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
