"""The config check, without Snakemake: defaults, one line per problem, and what the schema cannot say."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from carvana.competition import COMPETITION
from carvana.config import ConfigError, check_config, train_cars

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
MODEL = {"arch": "unet1024", "input_size": [64, 64]}


def _config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"models": {"a": dict(MODEL)}}
    config.update(copy.deepcopy(overrides))
    return config


def _problems(config: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        check_config(config, SCHEMA)
    return caught.value.problems


def test_the_offline_config_passes_and_names_its_three_models() -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert [spec.name for spec in check_config(config, SCHEMA)] == ["unet", "unet1024", "unet11"]


def test_the_schemas_defaults_are_filled_in_at_every_depth() -> None:
    config = _config()
    check_config(config, SCHEMA)
    assert config["dataset"] == "synthetic"
    assert config["folds"]["n_folds"] == 4
    assert config["tune"]["thresholds"] == {"start": 0.3, "stop": 0.7, "step": 0.01}
    assert config["models"]["a"]["epochs"] == 10
    assert config["models"]["a"]["optimizer"]["lr"] is None


def test_every_problem_is_listed_at_once_in_key_order() -> None:
    config = _config(folds={"n_folds": 1}, predict={"shards": 0, "batch_size": "8"})
    problems = _problems(config)
    assert len(problems) == 3
    assert problems[0].startswith("folds.n_folds: 1 is less than the minimum of 2 (Number of folds")
    assert problems[1].startswith("predict.batch_size: '8' is not of type 'integer'")
    assert problems[2].startswith("predict.shards: 0 is less than the minimum of 1")


def test_an_unknown_key_names_the_closest_valid_one_and_lists_them_all() -> None:
    (problem,) = _problems(_config(predict={"shard": 4}))
    assert problem.startswith("predict: unknown key 'shard' (did you mean 'shards'?); valid keys: shards, ")
    assert "batch_size, tta, gpu, threads" in problem


def test_a_models_bad_key_is_named_with_its_path() -> None:
    (problem,) = _problems(_config(models={"a": {**MODEL, "epoch": 3}}))
    assert problem.startswith("models.a: unknown key 'epoch' (did you mean 'epochs'?)")


def test_a_nan_passes_the_schemas_bounds_but_not_the_check() -> None:
    (problem,) = _problems(_config(models={"a": {**MODEL, "optimizer": {"lr": float("nan")}}}))
    assert problem == "models.a.optimizer.lr: nan is not a finite number"


def test_an_empty_model_list_shows_an_example_and_the_architectures() -> None:
    (problem,) = _problems(_config(models={}))
    assert problem.startswith("models is empty: configure at least one, e.g. unet1024: {arch: unet1024")
    assert "architectures: unet, unet1024, unet11, smp.Unet" in problem


def test_each_bad_model_is_named_and_the_good_ones_pass() -> None:
    models = {"a": MODEL, "b": {**MODEL, "arch": "unet12"}, "c": {**MODEL, "input_size": [100, 64]}}
    problems = _problems(_config(models=models))
    assert len(problems) == 2
    assert problems[0].startswith("models.b: unknown architecture 'unet12'; valid: unet, unet1024, unet11")
    assert problems[1] == (
        "models.c: model 'c' (unet1024): input_size [100, 64] has a side of 100, not divisible by 64: "
        "the nearest valid sides are 64 and 128"
    )


def test_ensemble_weights_naming_a_missing_model_are_rejected() -> None:
    (problem,) = _problems(_config(ensemble={"weights": {"b": 1}}))
    assert problem == (
        "ensemble.weights: ensemble weights name ['b'], which are not in the ensemble; its models are ['a']"
    )


def test_auto_weights_pass_and_a_weight_step_that_does_not_divide_one_is_rejected() -> None:
    config = _config(ensemble={"weights": "auto"})
    assert [spec.name for spec in check_config(config, SCHEMA)] == ["a"]
    assert config["ensemble"]["weight_step"] == 0.1 and config["tune"]["flag"] == {
        "min_dice": 0.5,
        "max_gap": 0.1,
    }
    (problem,) = _problems(_config(ensemble={"weights": "auto", "weight_step": 0.3}))
    assert (
        problem == "ensemble.weight_step: the weight step must divide 1 (0.5, 0.25, 0.2, 0.1, ...), got 0.3"
    )
    (problem,) = _problems(_config(ensemble={"weights": "equal"}))
    assert problem.startswith("ensemble.weights: 'equal' does not match '^auto$'")


def test_a_threshold_grid_whose_start_is_above_its_stop_is_rejected() -> None:
    (problem,) = _problems(_config(tune={"thresholds": {"start": 0.6, "stop": 0.4}}))
    assert (
        problem
        == "tune.thresholds: thresholds must satisfy 0 < start <= stop < 1, got start 0.6 and stop 0.4"
    )


@pytest.mark.parametrize(
    ("dataset", "settings", "cars"),
    [
        ("synthetic", {"synthetic": {"train_cars": 5}}, 5),
        ("local", {"local": {"source_dir": "/data", "full_competition": True}}, 318),  # 5,088 / 16
        ("kaggle", {"kaggle": {"full_competition": True}}, 318),
    ],
)
def test_more_folds_than_training_cars_is_rejected_where_the_count_is_known(
    dataset: str, settings: dict[str, Any], cars: int
) -> None:
    config = _config(dataset=dataset, folds={"n_folds": cars}, **settings)
    check_config(config, SCHEMA)
    (problem,) = _problems(_config(dataset=dataset, folds={"n_folds": cars + 1}, **settings))
    assert problem.startswith(f"folds.n_folds: {cars + 1} folds but ")
    assert problem.endswith(f"has {cars} training cars; choose 2..{cars} (each fold holds out whole cars)")


def test_a_hand_made_subset_leaves_the_fold_count_to_the_fold_step() -> None:
    config = _config(dataset="local", local={"source_dir": "/data", "full_competition": False})
    config["folds"] = {"n_folds": 500}
    check_config(config, SCHEMA)
    assert train_cars(config) == (None, "the data")


def test_each_unknown_key_counts_as_a_problem() -> None:
    problems = _problems(_config(foo=1, bar=2))
    assert len(problems) == 2
    assert all(problem.startswith("the config: unknown key '") for problem in problems)


def test_a_model_named_by_a_number_is_a_problem_not_a_crash() -> None:
    (problem,) = _problems(_config(models={1024: MODEL}, ensemble={"weights": {}}))
    assert problem == "models.1024: a model's name must be text, e.g. 'unet1024'"


def test_pretrained_weights_the_workflow_cannot_fetch_are_a_problem() -> None:
    encoder = "resnext101_32x4d"  # smp has only its instagram and ssl weights
    model = {"arch": "smp.Unet", "encoder": encoder, "input_size": [64, 64], "pretrained": True}
    (problem,) = _problems(_config(models={"x": model}))
    assert problem == (
        f"models.x: the smp encoder '{encoder}' has no ImageNet weights (it has: ssl, swsl); "
        "choose another encoder or set pretrained: false"
    )


def test_an_empty_mirror_url_is_a_problem() -> None:
    (problem,) = _problems(_config(pretrained_weights={"base_url": ""}))
    assert problem.startswith("pretrained_weights.base_url: '' should be non-empty")


def test_the_schemas_competition_is_the_one_the_code_names() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["properties"]["kaggle"]["properties"]["competition"]["default"] == COMPETITION
    assert COMPETITION == "carvana-image-masking-challenge"


def _key_paths(entry: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, value in entry.items():
        paths.add(prefix + key)
        if isinstance(value, dict):
            paths |= _key_paths(value, f"{prefix}{key}.")
    return paths


def test_competition_yaml_sets_every_model_key_that_config_yaml_sets() -> None:
    """competition.yaml is read over config.yaml key by key, so a model key that only config.yaml
    sets (the offline default's validate_every 13, its grayscale share) would carry over unseen."""
    offline = yaml.safe_load((ROOT / "config.yaml").read_text())["models"]
    competition = yaml.safe_load((ROOT / "competition.yaml").read_text())["models"]
    for name, entry in offline.items():
        missing = _key_paths(entry) - _key_paths(competition.get(name, {}))
        assert not missing, f"competition.yaml's models.{name} leaves {sorted(missing)} to config.yaml"
