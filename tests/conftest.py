"""Shared fixtures: one tiny synthetic dataset in the competition's layout, made once per session."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from carvana.data.synthetic import SyntheticSpec, generate
from carvana.folds import FoldSpec, make_folds
from carvana.layout import DatasetPaths

# 3 train cars and 2 test cars of 16 views at 96x64 (WxH): 48 + 32 images, generated in about a second.
TINY_SPEC = SyntheticSpec(train_cars=3, test_cars=2, image_size=(64, 96), seed=7)


class TinyDataset(NamedTuple):
    """A generated dataset: its folder, the true test masks (outside the folder) and its spec."""

    data_dir: Path
    truth_path: Path
    spec: SyntheticSpec


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> TinyDataset:
    """The session's one generated dataset. Read it only; corrupt a ``dataset_copy`` instead."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    data_dir, truth_path = root / "data", root / "test_truth.csv"
    generate(TINY_SPEC, data_dir, truth_path)
    return TinyDataset(data_dir=data_dir, truth_path=truth_path, spec=TINY_SPEC)


@pytest.fixture
def dataset_copy(tiny_dataset: TinyDataset, tmp_path: Path) -> TinyDataset:
    """A private copy of the tiny dataset, for tests that corrupt or change it."""
    data_dir = tmp_path / "data"
    truth_path = tmp_path / "test_truth.csv"
    shutil.copytree(tiny_dataset.data_dir, data_dir)
    shutil.copyfile(tiny_dataset.truth_path, truth_path)
    return TinyDataset(data_dir=data_dir, truth_path=truth_path, spec=tiny_dataset.spec)


@pytest.fixture(scope="session")
def folds_path(tiny_dataset: TinyDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset's cars in 3 folds (seed 1), made once per session. Read it only."""
    path = tmp_path_factory.mktemp("folds") / "folds.csv"
    make_folds(DatasetPaths(tiny_dataset.data_dir), FoldSpec(n_folds=3, seed=1), path)
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME folder: no credentials or config of the machine's user reach the kaggle CLI."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder
