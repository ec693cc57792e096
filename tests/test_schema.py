"""The config schema as the one source of defaults: every spec field and keyword parameter that
mirrors a config key, built with its defaults, holds the schema's default for that key, read here
from the YAML file itself; and the schema module's keys, copies and errors."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import MISSING
from pathlib import Path
from typing import Any

import pytest
import yaml

from carvana import schema
from carvana.config import check_config
from carvana.data.local import LocalSpec
from carvana.data.synthetic import SyntheticSpec
from carvana.data.validate import ValidationSpec
from carvana.folds import FoldSpec
from carvana.kaggle.client import KaggleCLI
from carvana.models.pretrained import WeightSource
from carvana.models.spec import AugmentSpec, LossSpec, ModelSpec, OptimizerSpec
from carvana.prediction.oof import write_oof
from carvana.prediction.pseudo import PseudoSpec
from carvana.prediction.shard import ShardSpec
from carvana.prediction.tta import TTASpec
from carvana.pseudo import RoundTraining
from carvana.tuning.choice import choose
from carvana.tuning.flags import FlagRule
from carvana.tuning.threshold import ThresholdGrid
from carvana.tuning.tune import tune

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
MODEL_KEYS = SCHEMA["$defs"]["model"]["properties"]  # what models.<name> holds


def schema_default(key: str) -> Any:
    """The default the schema file gives ``key``; ``models.*.`` is a model's entry."""
    if key.startswith("models.*."):
        node, parts = {"properties": MODEL_KEYS}, key.removeprefix("models.*.").split(".")
    else:
        node, parts = SCHEMA, key.split(".")
    for part in parts:
        node = node["properties"][part]
    return node["default"]


def model_keys(group: str, fields: list[str]) -> dict[str, str]:
    return {field: f"models.*.{group}{field}" for field in fields}


MODEL_FIELDS = [
    "tile_size",
    "encoder",
    "width",
    "pretrained",
    "epochs",
    "validate_every",
    "steps_per_epoch",
    "batch_size",
    "scheduler",
    "precision",
    "gpu",
    "threads",
    "workers",
    "compile",
    "seed",
]
# Each spec built with every default it has, and which of its fields mirror which config key.
SPECS: list[tuple[object, dict[str, str]]] = [
    (FoldSpec(), {"n_folds": "folds.n_folds", "seed": "folds.seed", "stratify": "folds.stratify"}),
    (
        SyntheticSpec(),
        {key: f"synthetic.{key}" for key in ("train_cars", "test_cars", "seed", "jpeg_quality")},
    ),
    (ValidationSpec(), {"decode_test": "validate_data.decode_test"}),
    (LocalSpec(Path("source")), {"hq": "local.hq"}),
    (KaggleCLI(), {"competition": "kaggle.competition"}),
    (
        WeightSource(),
        {"base_url": "pretrained_weights.base_url", "hf_endpoint": "pretrained_weights.hf_endpoint"},
    ),
    (TTASpec(), {key: f"predict.tta.{key}" for key in ("hflip", "vflip", "scales")}),
    (ShardSpec(1, 1), {key: f"predict.{key}" for key in ("batch_size", "gpu", "compile", "workers")}),
    (
        PseudoSpec(TTASpec()),
        {
            "batch_size": "predict.batch_size",
            "gpu": "predict.gpu",
            "workers": "predict.workers",
            "band": "pseudo.band",
        },
    ),
    (RoundTraining(Path("labels")), {key: f"pseudo.{key}" for key in ("share", "select", "ratio")}),
    (FlagRule(), {"min_dice": "tune.flag.min_dice", "max_gap": "tune.flag.max_gap"}),
    (ThresholdGrid(), {key: f"tune.thresholds.{key}" for key in ("start", "stop", "step")}),
    (
        ModelSpec("m", "unet11", (64, 64), OptimizerSpec("adam", 1e-4, 0.0), dropout=0.0),
        model_keys("", MODEL_FIELDS),
    ),
    (OptimizerSpec("adam", 1e-4, 0.0), model_keys("optimizer.", ["weight_decay"])),
    (LossSpec(), model_keys("loss.", ["bce", "dice"])),
    (AugmentSpec(), model_keys("augment.", list(MODEL_KEYS["augment"]["properties"]))),
]
# Keyword parameters of library functions that mirror a config key.
FUNCTIONS: list[tuple[Callable[..., Any], dict[str, str]]] = [
    (tune, {"weight_step": "ensemble.weight_step"}),
    (choose, {"weight_step": "ensemble.weight_step"}),
    (write_oof, {key: f"predict.{key}" for key in ("batch_size", "gpu", "workers")}),
]
# Fields with a default that mirror no config key, each with why.
NOT_CONFIG = {
    "SyntheticSpec.image_size": "synthetic.image_scale as a size, tested on its own below",
    "SyntheticSpec.workers": "processes that draw the cars: how the stage runs, a flag of its own",
    "ValidationSpec.image_size": "read off the first train image unless given",
    "ValidationSpec.train_images": "the competition's counts, given for the full competition only",
    "ValidationSpec.test_images": "the competition's counts, given for the full competition only",
    "ValidationSpec.workers": "processes that read the images: a flag of its own",
    "ValidationSpec.max_problems": "how many problems the report lists",
    "KaggleCLI.environ": "the subprocess's environment, for tests",
    "ShardSpec.tta": "a TTASpec, compared on its own",
    "RoundTraining.init_weights": "a path that the round gives",
    "ModelSpec.loss": "a LossSpec, compared on its own",
    "ModelSpec.augment": "an AugmentSpec, compared on its own",
}


def _plain(value: Any) -> Any:
    """A spec's tuple as the list YAML reads."""
    return [_plain(item) for item in value] if isinstance(value, tuple) else value


@pytest.mark.parametrize(("spec", "keys"), SPECS, ids=[type(spec).__name__ for spec, _ in SPECS])
def test_every_spec_default_is_the_schemas(spec: object, keys: dict[str, str]) -> None:
    name = type(spec).__name__
    drifted = [
        f"{name}.{field} is {getattr(spec, field)!r} but the schema's {key} is {schema_default(key)!r}"
        for field, key in keys.items()
        if _plain(getattr(spec, field)) != schema_default(key)
    ]
    assert not drifted, "\n".join(drifted)
    unmapped = [
        f"{name}.{field.name}"
        for field in dataclasses.fields(spec)  # type: ignore[arg-type]
        if (field.default is not MISSING or field.default_factory is not MISSING)
        and field.name not in keys
        and f"{name}.{field.name}" not in NOT_CONFIG
    ]
    assert not unmapped, f"fields with a default of their own, mapped to no config key: {unmapped}"


@pytest.mark.parametrize(
    ("function", "keys"), FUNCTIONS, ids=[function.__name__ for function, _ in FUNCTIONS]
)
def test_every_keyword_default_is_the_schemas(function: Callable[..., Any], keys: dict[str, str]) -> None:
    parameters = inspect.signature(function).parameters
    drifted = [
        f"{function.__name__}'s {name} is {parameters[name].default!r} but the schema's {key} is "
        f"{schema_default(key)!r}"
        for name, key in keys.items()
        if parameters[name].default != schema_default(key)
    ]
    assert not drifted, "\n".join(drifted)


def test_the_schemas_model_keys_are_the_model_specs_fields() -> None:
    # so MODEL_FIELDS, with the keys whose spec field has no default, covers every model key
    without_default = {"arch", "input_size", "dropout", "optimizer", "loss", "augment"}
    assert set(MODEL_KEYS) == {*MODEL_FIELDS, *without_default}
    assert {field.name for field in dataclasses.fields(ModelSpec)} == {"name", *MODEL_KEYS}


def test_the_synthetic_size_is_the_schemas_scale() -> None:
    scale = schema_default("synthetic.image_scale")
    height, width = 1280, 1918  # the competition's images
    assert SyntheticSpec().image_size == (round(height * scale), round(width * scale))


def test_a_models_key_is_reached_through_its_reference() -> None:
    for key in ("models.*.epochs", "models.*.augment.hue", "models.*.optimizer.weight_decay"):
        assert schema.default(key) == schema_default(key), key
    assert schema.default("tune.thresholds.step") == schema_default("tune.thresholds.step")


def test_an_unknown_key_and_a_key_without_default_are_named() -> None:
    with pytest.raises(KeyError, match=r"the config schema has no key 'folds\.n_fold'"):
        schema.default("folds.n_fold")
    with pytest.raises(KeyError, match=r"the config schema has no key 'models\.epochs'"):
        schema.default("models.epochs")  # a model's keys are under models.*
    with pytest.raises(KeyError, match=r"the config schema gives 'models\.\*\.arch' no default"):
        schema.default("models.*.arch")


def test_a_default_is_a_copy_and_the_config_check_leaves_the_schema_as_read() -> None:
    scales = schema.default("predict.tta.scales")
    scales.append(2.0)
    assert schema.default("predict.tta.scales") == [1.0]
    first: dict[str, Any] = {"models": {"a": {"arch": "unet11", "input_size": [64, 64]}}}
    check_config(first)
    assert first["tune"]["thresholds"] == {"start": 0.3, "stop": 0.7, "step": 0.01}  # filled at depth
    assert schema.default("folds") == {}  # filling did not write into the schema's own {}
    first["folds"]["n_folds"] = 9  # the filled-in config is its caller's to change
    second: dict[str, Any] = {"models": {"a": {"arch": "unet11", "input_size": [64, 64]}}}
    check_config(second)
    assert second["folds"]["n_folds"] == 4
