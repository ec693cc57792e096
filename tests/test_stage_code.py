"""Code digests of the stages, on a private copy of the package's source that each test edits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from carvana.models.spec import ARCH_MODULES
from carvana.stage_code import SOURCE_DIR, module_closure, stage_digest

STAGES = ("_synthesize", "_validate_data", "_make_folds", "_train", "_tune_threshold", "_predict", "_score")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    copy = tmp_path / "carvana"
    shutil.copytree(SOURCE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _digests(source: Path) -> dict[str, str]:
    digests = {stage: stage_digest(stage, source_dir=source) for stage in STAGES}
    for arch in sorted(ARCH_MODULES):
        digests[f"_train:{arch}"] = stage_digest("_train", ARCH_MODULES - {arch}, source)
    return digests


def _changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(stage for stage in before if before[stage] != after[stage])


def test_a_copy_of_the_source_has_the_installed_digests(source: Path) -> None:
    assert stage_digest("_train") == stage_digest("_train", source_dir=source)
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
    assert changed == sorted(["_score", "_train", *(f"_train:{arch}" for arch in ARCH_MODULES)])


def test_an_architecture_edit_changes_that_models_training_and_prediction_only(source: Path) -> None:
    before = _digests(source)
    with (source / "models/unet11.py").open("a") as file:
        file.write("\nEXTRA_SETTING = 1\n")
    assert _changed(before, _digests(source)) == ["_predict", "_train", "_train:carvana.models.unet11"]


def test_imports_inside_functions_and_from_package_imports_are_followed() -> None:
    # carvana.cli imports the training job inside _train; the job imports the task inside train()
    closure = module_closure(["carvana.training.job"])
    assert {"carvana.training.task", "carvana.metrics", "carvana", "carvana.training"} <= closure
    # `from carvana import rle` names the module carvana.rle
    assert "carvana.rle" in module_closure(["carvana.folds"])
    assert "carvana.models.unet" not in module_closure(["carvana.models.build"], {"carvana.models.unet"})


def test_an_unknown_stage_lists_the_stages() -> None:
    with pytest.raises(ValueError, match=r"carvana.cli has no function '_trian'; stages: \[.*'_train'"):
        stage_digest("_trian")
