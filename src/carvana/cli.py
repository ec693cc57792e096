"""``carvana <stage> ...``: one subcommand per pipeline stage.

Each stage is a module of ``carvana.stages`` named after it; this file lists them and dispatches.
A stage parses its flags, builds the stage's frozen spec (which validates the values) and
calls one library function. The Snakemake rules call these commands; so can a person on a GPU box.
A bad value exits with status 2 and a one-line message; a failed check exits with status 1.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

# In pipeline order: data, folds, weights, training, tuning, prediction, submission, then the
# pseudo-labelling rounds, the report and the tools every job runs through.
STAGES = (
    "synthesize",
    "import-files",
    "download",
    "validate-data",
    "make-folds",
    "fetch-weights",
    "train",
    "oof",
    "tune-threshold",
    "predict",
    "submission",
    "validate-submission",
    "score",
    "submit",
    "pseudo-labels",
    "pseudo-labels-table",
    "pseudo-rounds",
    "report-figures",
    "models",
    "with-gpus",
    "logged",
)


def stage_module(stage: str) -> ModuleType:
    """The module of ``carvana <stage>``: ``tune-threshold`` is ``carvana.stages.tune_threshold``."""
    return importlib.import_module(f"carvana.stages.{stage.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carvana", description=__doc__.splitlines()[0])
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for stage in STAGES:
        module = stage_module(stage)
        formatter = argparse.ArgumentDefaultsHelpFormatter  # shows which schema key a default is
        module.add_arguments(
            stages.add_parser(stage, help=module.HELP, description=module.HELP, formatter_class=formatter)
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from carvana.stages._args import resolve_schema_defaults

    args = build_parser().parse_args(argv)
    from carvana.failures import JobError
    from carvana.kaggle.client import KaggleError
    from carvana.models.pretrained import PretrainedError

    try:
        resolve_schema_defaults(args)
        stage_module(args.stage).run(args)
    except (KaggleError, JobError, PretrainedError) as error:
        print(f"carvana {args.stage}: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as error:
        from carvana.data.validate import DataValidationError
        from carvana.submission import SubmissionError

        print(f"carvana {args.stage}: {error}", file=sys.stderr)
        return 1 if isinstance(error, DataValidationError | SubmissionError) else 2
    return 0


def command() -> NoReturn:
    """The ``carvana`` command: ``main``, then an exit without the interpreter's teardown.

    A stage that loaded torch and Lightning holds about 4,000 modules and half a million objects,
    and a normal exit frees them one by one: 2.5 s of CPU after a training job's work is done,
    0.4 s after one that loaded torch alone (a quarter of a tiny run's job time, measured on 2
    cores). Every file a stage writes is closed, and renamed into place, before ``main`` returns;
    what is left is what a normal exit does first: the exit handlers (logging, multiprocessing's
    children) and the standard streams. Tests call ``main``, which returns."""
    code = main()
    atexit._run_exitfuncs()  # CPython's own first step of an exit; private, stable since 2.x
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    command()
