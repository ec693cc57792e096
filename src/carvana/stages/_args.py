"""What the stages' command lines share: checked integers, the TTA flags, defaults taken from the
config schema, and the config file read by the stages that take one.

A flag that mirrors a config key has no default of its own: ``schema_default(key)`` stands in for
it and ``resolve_schema_defaults`` puts the schema's value in its place once the flags are
parsed (``carvana.schema``), so the schema is the one source of every default and a stage run by
hand does what the workflow's default config does.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carvana import schema


@dataclass(frozen=True)
class SchemaDefault:
    """A flag's default, still to be read from the schema: the value of ``keys`` (dotted paths,
    e.g. ``folds.seed``), or the list of their values when there are several."""

    keys: tuple[str, ...]

    def __str__(self) -> str:  # what --help shows
        return f"the config schema's {', '.join(self.keys)}"


def schema_default(*keys: str) -> SchemaDefault:
    """The default of a flag that mirrors config key ``keys[0]`` (or several keys, one value each)."""
    return SchemaDefault(keys)


def resolve_schema_defaults(args: argparse.Namespace) -> None:
    """Put the schema's value in place of every flag left at ``schema_default``."""
    for name, value in vars(args).items():
        if isinstance(value, SchemaDefault):
            values = [schema.default(key) for key in value.keys]
            setattr(args, name, values[0] if len(values) == 1 else values)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def add_tta_arguments(parser: argparse.ArgumentParser) -> None:
    """The TTA flags, the same for prediction and for the OOF maps made the way it predicts."""
    parser.add_argument(
        "--hflip", action=argparse.BooleanOptionalAction, default=schema_default("predict.tta.hflip")
    )
    parser.add_argument(
        "--vflip", action=argparse.BooleanOptionalAction, default=schema_default("predict.tta.vflip")
    )
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=schema_default("predict.tta.scales"),
        help="TTA scales of each model's input size",
    )


def add_network_job_arguments(parser: argparse.ArgumentParser, threads_help: str) -> None:
    """The batch, device and CPU flags of a job that runs networks over images (OOF, prediction,
    pseudo labels), with prediction's defaults."""
    parser.add_argument("--batch-size", type=positive_int, default=schema_default("predict.batch_size"))
    add_tta_arguments(parser)
    parser.add_argument(
        "--gpu", type=int, default=schema_default("predict.gpu"), help="0: CPU even where CUDA is present"
    )
    parser.add_argument(
        "--threads", type=positive_int, default=schema_default("predict.threads"), help=threads_help
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        default=schema_default("predict.workers"),
        help="loader processes (0: a thread of the job)",
    )


def read_config(config_file: Path) -> dict[str, Any]:
    """A config file's mapping, as written (no schema defaults filled in)."""
    import yaml

    if not config_file.is_file():
        raise FileNotFoundError(f"config file {config_file} not found")
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{config_file} must hold a mapping of config keys")
    return config


def config_models(config_file: Path) -> dict[str, Any]:
    """The ``models:`` entries of a config file, by name."""
    models = read_config(config_file).get("models") or {}
    if not isinstance(models, dict):
        raise ValueError(f"models in {config_file} must map model names to their settings")
    return models
