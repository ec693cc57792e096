"""The config check that runs before any job: every problem found, one per line, each naming the
key, what is wrong and what is valid.

First the schema (workflow/schemas/config.schema.yaml), which also fills in its defaults; then
what a schema cannot say: each model's architecture, encoder and sizes, the ensemble weights, the
threshold grid's order, and the fold count against the number of training cars.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from carvana.competition import COMPETITION_TRAIN_IMAGES
from carvana.layout import VIEWS_PER_CAR
from carvana.models.spec import ModelSpec, architectures
from carvana.schema import SCHEMA_PATH, load


class ConfigError(ValueError):
    """The config's problems, one per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = f"{len(problems)} problems" if len(problems) > 1 else "a problem"
        super().__init__(f"the config has {count}; nothing ran:\n" + "\n".join(f"  - {p}" for p in problems))


def check_config(config: dict[str, Any], schema_path: Path = SCHEMA_PATH) -> list[ModelSpec]:
    """Fill in the schema's defaults and check ``config``; return its models' specs.
    ConfigError lists every problem."""
    problems = list(schema_problems(config, load(schema_path)))
    problems += [f"{key}: {value!r} is not a finite number" for key, value in _non_finite(config)]
    if problems:  # the checks below assume the schema's types
        raise ConfigError(problems)
    specs, problems = _model_specs(config)
    problems += _other_problems(config, [spec.name for spec in specs])
    if problems:
        raise ConfigError(problems)
    return specs


def schema_problems(config: dict[str, Any], schema: dict[str, Any]) -> Iterator[str]:
    """Each schema violation as ``key: what is wrong (what the key is)``; defaults filled in."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def fill_defaults(validator: Any, properties: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:  # a copy: the config's own, which filling nests into
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, properties, instance, schema)

    filling = jsonschema.validators.extend(base, {"properties": fill_defaults})  # type: ignore[no-untyped-call]
    validator = filling(schema)
    errors = sorted(validator.iter_errors(config), key=lambda error: _key(error.absolute_path))
    for error in errors:
        yield from _describe(error)


def _describe(error: Any) -> Iterator[str]:
    """The problems of one schema error: one per unknown key, else one."""
    key = _key(error.absolute_path) or "the config"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        valid = list(schema.get("properties", {}))
        for name in (name for name in error.instance if name not in valid):
            close = difflib.get_close_matches(str(name), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            yield f"{key}: unknown key {name!r}{hint}; valid keys: {', '.join(valid)}"
        return
    if error.validator == "minProperties" and key == "models":
        yield (
            "models is empty: configure at least one, e.g. unet1024: {arch: unet1024, input_size: "
            f"[1024, 1024]}}; architectures: {', '.join(architectures())}"
        )
        return
    description = " ".join(str(schema.get("description", "")).split()).rstrip(".")
    yield f"{key}: {error.message}" + (f" ({description})" if description else "")


def _key(path: Sequence[Any]) -> str:
    """``["models", "unet", "input_size", 0]`` -> ``models.unet.input_size[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _non_finite(node: Any, key: str = "") -> Iterator[tuple[str, float]]:
    """Keys holding NaN or infinity, which pass every numeric bound of a schema."""
    if isinstance(node, float) and not math.isfinite(node):
        yield key, node
    elif isinstance(node, Mapping):
        for name, value in node.items():
            yield from _non_finite(value, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _non_finite(value, f"{key}[{index}]")


def _model_specs(config: dict[str, Any]) -> tuple[list[ModelSpec], list[str]]:
    """Each model's spec (architecture, sizes, encoder checked) and the problems of the others."""
    specs, problems = [], []
    for name, entry in config["models"].items():
        if not isinstance(name, str):  # YAML reads `1024:` as a number, which propertyNames skips
            problems.append(f"models.{name}: a model's name must be text, e.g. 'unet{name}'")
            continue
        try:
            spec = ModelSpec.from_entry(name, entry)
            if spec.encoder:
                from carvana.models.smp_models import check_encoder

                check_encoder(spec.encoder)
            if spec.pretrained:
                from carvana.models.pretrained import pretrained_files

                pretrained_files(spec)  # weights the workflow can fetch
        except ValueError as error:
            problems.append(f"models.{name}: {error}")
        else:
            specs.append(spec)
    return specs, problems


def _other_problems(config: dict[str, Any], models: list[str]) -> list[str]:
    from carvana.prediction.weights import model_weights
    from carvana.tuning.blend import simplex_grid
    from carvana.tuning.threshold import ThresholdGrid

    problems = []
    if config["dataset"] == "local" and not config["local"]["source_dir"]:
        problems.append(
            "local.source_dir is empty but dataset is 'local': set it to the folder that holds the "
            "competition files (train/ or train.zip, train_masks/ or train_masks.zip, test/ or "
            "test.zip, train_masks.csv, metadata.csv, sample_submission.csv)"
        )
    weights = config["ensemble"]["weights"]
    if models and len(models) == len(config["models"]) and weights != "auto":
        try:
            model_weights(models, weights)
        except ValueError as error:
            problems.append(f"ensemble.weights: {error}")
    try:
        simplex_grid(max(1, len(models)), config["ensemble"]["weight_step"])
    except ValueError as error:
        problems.append(f"ensemble.weight_step: {error}")
    grid = config["tune"]["thresholds"]
    try:
        ThresholdGrid(grid["start"], grid["stop"], grid["step"])
    except ValueError as error:
        problems.append(f"tune.thresholds: {error}")
    cars, source = train_cars(config)
    n_folds = config["folds"]["n_folds"]
    if cars is not None and n_folds > cars:
        problems.append(
            f"folds.n_folds: {n_folds} folds but {source} has {cars} training cars; "
            f"choose 2..{cars} (each fold holds out whole cars)"
        )
    return problems


def train_cars(config: Mapping[str, Any]) -> tuple[int | None, str]:
    """The number of training cars the dataset will have, where the config says it, and where
    from; (None, ...) for a hand-made subset, which the fold step checks once it is there."""
    dataset = config["dataset"]
    if dataset == "synthetic":
        return config["synthetic"]["train_cars"], "the generated dataset (synthetic.train_cars)"
    if config[dataset]["full_competition"]:
        return COMPETITION_TRAIN_IMAGES // VIEWS_PER_CAR, "the competition"
    return None, "the data"
