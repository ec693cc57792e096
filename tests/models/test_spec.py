"""Model entries from config: defaults, per-architecture optimizers, and rejections that name the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from carvana.models.build import build_model, count_parameters
from carvana.models.spec import ModelSpec, model_specs

ROOT = Path(__file__).resolve().parents[2]


def entry(**settings: object) -> dict[str, object]:
    return {"arch": "unet1024", "input_size": [64, 128], **settings}


@pytest.mark.parametrize(
    ("arch", "optimizer", "lr", "momentum"),
    [("unet", "sgd", 0.01, 0.99), ("unet1024", "rmsprop", 1e-4, 0.0), ("unet11", "adam", 1e-4, 0.0)],
)
def test_each_architecture_defaults_to_its_references_optimizer(
    arch: str, optimizer: str, lr: float, momentum: float
) -> None:
    tile = {"tile_size": [188, 188]} if arch == "unet" else {}
    spec = ModelSpec.from_entry("m", {"arch": arch, "input_size": [64, 128], **tile})
    assert (spec.optimizer.name, spec.optimizer.lr, spec.optimizer.momentum) == (optimizer, lr, momentum)


def test_schema_nulls_mean_the_optimizers_defaults() -> None:
    spec = ModelSpec.from_entry("m", entry(optimizer={"name": "sgd", "lr": None, "momentum": None}))
    assert (spec.optimizer.lr, spec.optimizer.momentum) == (0.01, 0.99)


def test_json_round_trip_keeps_every_setting() -> None:
    spec = ModelSpec.from_entry(
        "m",
        entry(
            epochs=3, loss={"dice": 0.5}, augment={"hflip_p": 0.0}, optimizer={"name": "adamw", "lr": 0.002}
        ),
    )
    assert ModelSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"arch": "unet1024", "input_size": [100, 128]},
            "side of 100, not divisible by 64: the nearest valid sides are 64 and 128",
        ),
        (
            {"arch": "unet11", "input_size": [96, 90]},
            "side of 90, not divisible by 32: the nearest valid sides are 64 and 96",
        ),
        (
            {"arch": "unet", "input_size": [80, 120], "tile_size": [290, 316]},
            "side of 290 .* nearest valid sides are 284 and 300",
        ),
        ({"arch": "unet", "input_size": [80, 120], "tile_size": [100, 188]}, "smallest valid side is 188"),
        ({"arch": "unet", "input_size": [80, 120]}, "needs tile_size"),
        ({"arch": "unet11", "input_size": [64, 64], "tile_size": [188, 188]}, "only unet takes tile_size"),
        (
            {"arch": "resnet", "input_size": [64, 64]},
            "unknown architecture 'resnet'; valid: unet, unet1024, unet11, smp.Unet",
        ),
        ({"arch": "smp.Unet", "input_size": [64, 64]}, "needs an encoder"),
        ({"arch": "unet1024", "input_size": [64, 64], "pretrained": True}, "has no pretrained weights"),
        (
            {"arch": "unet11", "input_size": [64, 64], "pretrained": True, "width": 0.5},
            "pretrained weights need width 1",
        ),
        (
            {"arch": "unet1024", "input_size": [64, 64], "optimizer": {"lr": -0.1}},
            "model 'm': learning rate must be positive",
        ),
        (
            {"arch": "unet1024", "input_size": [64, 64], "optimizer": {"name": "lion"}},
            "unknown optimizer 'lion'; valid: sgd, rmsprop, adam, adamw",
        ),
        ({"arch": "unet1024", "input_size": [64, 64], "augment": {"flip": 0.5}}, "model 'm': .*flip"),
        ({"arch": "unet1024", "input_size": [64, 64], "epoch": 3}, r"unknown keys \['epoch'\]"),
        ({"arch": "unet1024", "input_size": [64, 64], "precision": "fp8"}, "unknown precision 'fp8'"),
        ({"arch": "unet1024", "input_size": [64, 64], "dropout": 0.5}, "dropout applies to unet only"),
        (
            {"arch": "unet1024", "input_size": [64, 64], "epochs": 10, "validate_every": 4},
            r"validate_every 4 does not divide epochs 10, so the last epoch would not be scored",
        ),
        (
            {"arch": "unet1024", "input_size": [64, 64], "steps_per_epoch": 0},
            r"steps_per_epoch must be at least 1, got 0",
        ),
        (
            {"arch": "unet", "input_size": [64, 64], "tile_size": [188, 188], "dropout": 1.5},
            r"dropout is a rate in \[0, 1\), got 1.5",
        ),
    ],
)
def test_bad_entries_are_rejected_with_the_fix(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelSpec.from_entry("m", settings)


def test_an_empty_model_list_and_a_bad_name_are_rejected() -> None:
    with pytest.raises(ValueError, match="models is empty"):
        model_specs({})
    with pytest.raises(ValueError, match="model name 'my model'"):
        model_specs({"my model": entry()})


def test_schema_defaults_equal_the_specs_defaults() -> None:
    # a model entry takes the same defaults whether Snakemake fills them from the schema or the
    # CLI fills them from ModelSpec (a run by hand from config.yaml)
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    model = schema["$defs"]["model"]["properties"]
    filled = {key: value["default"] for key, value in model.items() if "default" in value}
    for group in ("loss", "augment", "optimizer"):
        filled[group] = {key: value["default"] for key, value in model[group]["properties"].items()}
    from_schema = ModelSpec.from_entry("m", {**filled, **entry()})
    assert from_schema == ModelSpec.from_entry("m", entry())


@pytest.mark.parametrize(
    ("given", "expected"),
    [({}, 0.5), ({"width": 0.125}, 0.0), ({"width": 0.125, "dropout": 0.25}, 0.25), ({"dropout": 0}, 0.0)],
)
def test_unet_takes_the_papers_dropout_at_full_width_unless_told(
    given: dict[str, float], expected: float
) -> None:
    spec = ModelSpec.from_entry(
        "u", {"arch": "unet", "input_size": [64, 64], "tile_size": [188, 188], **given}
    )
    assert spec.dropout == expected
    assert ModelSpec.from_json(spec.to_json()).dropout == expected  # as a training job receives it


def test_configured_models_build_with_their_sizes() -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    specs = model_specs(config["models"])
    assert {spec.arch for spec in specs} >= {"unet", "unet1024", "unet11"}
    for spec in specs:
        assert count_parameters(build_model(spec)) > 10_000


def test_an_smp_model_builds_from_config_alone() -> None:
    spec = ModelSpec.from_entry("r18", {"arch": "smp.Unet", "encoder": "resnet18", "input_size": [64, 96]})
    assert count_parameters(build_model(spec)) == 14_328_209  # smp 0.6 Unet/resnet18, 1 class


def test_an_unknown_smp_encoder_lists_the_valid_ones() -> None:
    spec = ModelSpec.from_entry("x", {"arch": "smp.Unet", "encoder": "resnet35", "input_size": [64, 96]})
    with pytest.raises(ValueError, match=r"unknown smp encoder 'resnet35'; valid: .*resnet34"):
        build_model(spec)


def test_the_recipe_leaves_out_how_a_job_runs_and_nothing_else() -> None:
    entry = {"arch": "unet11", "input_size": [128, 192]}
    spec = ModelSpec.from_entry("m", entry)
    ran_otherwise = ModelSpec.from_entry("m", {**entry, "threads": 4, "workers": 8, "compile": True})
    assert ran_otherwise.to_json() != spec.to_json()
    assert ran_otherwise.recipe_json() == spec.recipe_json()
    for key, value in (("batch_size", 4), ("epochs", 3), ("precision", "32-true"), ("seed", 1)):
        changed = ModelSpec.from_entry("m", {**entry, key: value})
        assert changed.recipe_json() != spec.recipe_json(), key
    assert set(json.loads(spec.to_json())) - set(json.loads(spec.recipe_json())) == {
        "threads",
        "workers",
        "compile",
    }
