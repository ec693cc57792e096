"""Shared fixtures: one tiny synthetic dataset in the competition's layout, made once per session;
and how the tests are shared between pytest-xdist's workers (``-n``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch

from carvana.data.synthetic import SyntheticSpec, generate
from carvana.folds import FoldSpec, make_folds
from carvana.layout import DatasetPaths

# How pytest-xdist's workers share the tests (``-n``, set in pyproject.toml): a worker takes a whole
# unit, so each module's fixtures, and the tiny finished run that these modules read, are made once.
SHARED_RUN_MODULES = frozenset(
    f"tests/workflow/{name}.py"
    for name in ("test_workflow", "test_reruns", "test_bad_input", "test_crash_recovery", "test_report")
)
# The longest units first: the last worker free would otherwise start the full-resolution run
# when the others are done. The Slurm run comes second, beside the full-resolution run: it spends
# most of its time waiting for the cluster's status checks, which leaves the full-resolution run's
# two jobs the cores that the finished tiny run (two jobs at a time) would take.
LONGEST_FIRST = (
    "tests/workflow/test_competition_geometry.py",
    "tests/workflow/test_slurm.py",
    "finished_run",
    "tests/workflow/test_pseudo_rounds.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, each worker gets its share of the cores, it and the processes it starts: two
    workers of two threads each on two cores ran torch's tests 3 to 8 times slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        share = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ["OMP_NUM_THREADS"] = str(share)
        torch.set_num_threads(share)


def unit_of(nodeid: str) -> str:
    """A test's unit of work: the finished tiny run's, or its module's."""
    module = nodeid.split("::")[0]
    return "finished_run" if module in SHARED_RUN_MODULES else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Units as ``unit_of`` draws them, handed out in the order the tests were collected."""
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False  # keep the order below
    return UnitScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest units first, then those with a slow test, then the rest, each in the order
    collected. A test that reads the finished run outside SHARED_RUN_MODULES is refused: it would
    make the run again on another worker."""
    for item in items:
        if "finished_run" in item.fixturenames and unit_of(item.nodeid) != "finished_run":
            raise pytest.UsageError(f"{item.nodeid} reads finished_run: add its module to SHARED_RUN_MODULES")

    slow = {unit_of(item.nodeid) for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> tuple[int, int]:  # a unit's tests stay together, in one process too
        unit = unit_of(item.nodeid)
        if unit in LONGEST_FIRST:
            return (0, LONGEST_FIRST.index(unit))
        return (1 if unit in slow else 2, 0)

    items.sort(key=rank)  # stable: the collection's order within each rank


@pytest.fixture(autouse=True)
def torch_threads() -> Iterator[None]:
    """Each test starts with the process's thread count: a training job run in-process sets it
    (to its spec's threads), and the tests after it, in whatever order a worker takes them, would
    otherwise run on one thread."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


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
