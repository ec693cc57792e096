"""Code digests of the stages, on a private copy of the package's source that each test edits."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from carvana.cli import STAGES as STAGE_NAMES
from carvana.models.spec import ARCH_MODULES
from carvana.stage_code import SOURCE_DIR, module_closure, stage_digest, stage_names

STAGES = ("synthesize", "validate-data", "make-folds", "train", "tune-threshold", "predict", "score")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    copy = tmp_path / "carvana"
    shutil.copytree(SOURCE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _digests(source: Path) -> dict[str, str]:
    digests = {stage: stage_digest(stage, source_dir=source) for stage in STAGES}
    for arch in sorted(ARCH_MODULES):
        digests[f"train:{arch}"] = stage_digest("train", ARCH_MODULES - {arch}, source)
    return digests


def _changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(stage for stage in before if before[stage] != after[stage])


def test_a_copy_of_the_source_has_the_installed_digests(source: Path) -> None:
    assert stage_digest("train") == stage_digest("train", source_dir=source)
    assert len(set(_digests(source).values())) == len(STAGES) + len(ARCH_MODULES)


def test_comments_docstrings_and_formatting_change_nothing(source: Path) -> None:
    before = _digests(source)
    layout = source / "layout.py"
    text = layout.read_text()
    text = text.replace('"""', '"""Reworded. ', 1)  # the module docstring
    layout.write_text("# a new comment\n\n" + text.replace("\n\n\n", "\n\n\n\n") + "\n# the end\n")
    assert _changed(before, _digests(source)) == []


def test_a_code_edit_in_a_module_every_stage_imports_changes_every_stage(source: Path) -> None:
    before = _digests(source)
    with (source / "layout.py").open("a") as file:
        file.write("\nEXTRA_SETTING = 1\n")
    assert _changed(before, _digests(source)) == sorted(before)


def test_a_code_edit_in_metrics_changes_the_stages_that_import_it(source: Path) -> None:
    before = _digests(source)
    with (source / "metrics.py").open("a") as file:
        file.write("\nEXTRA_SETTING = 1\n")
    changed = _changed(before, _digests(source))
    assert changed == sorted(["score", "train", *(f"train:{arch}" for arch in ARCH_MODULES)])


def test_an_architecture_edit_changes_that_models_training_and_prediction_only(source: Path) -> None:
    before = _digests(source)
    with (source / "models/unet11.py").open("a") as file:
        file.write("\nEXTRA_SETTING = 1\n")
    assert _changed(before, _digests(source)) == ["predict", "train", "train:carvana.models.unet11"]


def test_imports_inside_functions_and_from_package_imports_are_followed() -> None:
    # the train stage imports the training job inside run(); the job imports the task inside train()
    closure = module_closure(["carvana.training.job"])
    assert {"carvana.training.task", "carvana.metrics", "carvana", "carvana.training"} <= closure
    # `from carvana import rle` names the module carvana.rle
    assert "carvana.rle" in module_closure(["carvana.folds"])
    assert "carvana.models.unet" not in module_closure(["carvana.models.build"], {"carvana.models.unet"})


def test_an_unknown_stage_lists_the_stages() -> None:
    with pytest.raises(
        ValueError, match=r"no stage 'trian'; stages: .*make-folds, .*, train, tune-threshold"
    ):
        stage_digest("trian")


def test_every_subcommand_is_a_stage_module_and_the_other_way_round() -> None:
    assert sorted(STAGE_NAMES) == stage_names()


def test_a_stages_flags_and_help_change_no_digest_but_its_run_does(source: Path) -> None:
    before = _digests(source)
    folds = source / "stages/make_folds.py"
    text = folds.read_text()
    text = text.replace('HELP = "', 'HELP = "reworded: ').replace(
        'parser.add_argument("--seed"', 'parser.add_argument("--seed", metavar="SEED"'
    )
    folds.write_text(text)
    assert _changed(before, _digests(source)) == []
    folds.write_text(text.replace("sizes = table", "sizes = (table)\n    sizes = table"))
    assert _changed(before, _digests(source)) == ["make-folds"]


def test_a_helper_that_run_calls_counts_and_one_it_does_not_is_left_out(source: Path) -> None:
    before = _digests(source)
    train = source / "stages/train.py"
    train.write_text(train.read_text() + "\n\ndef _unused() -> int:\n    return 1\n")
    assert _changed(before, _digests(source)) == []
    text = train.read_text().replace('raise ValueError(f"--model is', 'raise ValueError(f"model: --model is')
    train.write_text(text)
    assert _changed(before, _digests(source)) == sorted(
        ["train", *(f"train:{arch}" for arch in ARCH_MODULES)]
    )


def test_the_stages_package_imports_nothing() -> None:
    # importing a stage runs carvana/stages/__init__.py: it must not pull every stage into each digest
    tree = ast.parse((SOURCE_DIR / "stages/__init__.py").read_text())
    assert [type(node) for node in tree.body] == [ast.Expr]
