"""Bad input through the whole workflow: each case stops with a message naming what is wrong and
how to fix it, before anything downstream runs, and every file a run had finished stays as it was.

Bad config: Snakemake stops while reading the config, so no job starts. Bad data: the data check
fails, so the folds and everything after them are neither made nor overwritten. Failures during
training and prediction: the job stops without writing its outputs, and nothing after it runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from workflow_runs import (
    TINY,
    TINY_MODELS,
    FinishedRun,
    copy_run,
    edit_config,
    environ,
    snakemake,
    workflow_copy,
)

from carvana.data.images import read_mask, write_mask
from carvana.layout import DatasetPaths

# --- bad config: rejected while Snakemake reads it, before any job --------------------------------

TINY_MODEL = TINY_MODELS["unet1024"]


BAD_CONFIGS = [
    ({"dataset": "kagle"}, r"dataset: 'kagle' is not one of \['synthetic', 'local', 'kaggle'\]"),
    (
        {"models": {"m": {**TINY_MODEL, "arch": "unet12"}}, "ensemble": {"weights": {}}},
        r"models\.m: unknown architecture 'unet12'; valid: unet, unet1024, unet11, smp\.Unet",
    ),
    (
        {
            "models": {"m": {"arch": "smp.Unet", "encoder": "resnet35", "input_size": [64, 64]}},
            "ensemble": {"weights": {}},
        },
        r"models\.m: unknown smp encoder 'resnet35'; valid: resnet18, resnet34, resnet50",
    ),
    ({"folds": {"n_folds": 1}}, r"folds\.n_folds: 1 is less than the minimum of 2"),
    (
        {"folds": {"n_folds": 5}},  # the tiny dataset has 4 training cars
        r"folds\.n_folds: 5 folds but the generated dataset \(synthetic\.train_cars\) has 4 training "
        r"cars; choose 2\.\.4",
    ),
    (
        {"models": {**TINY_MODELS, "unet1024": {**TINY_MODEL, "input_size": [100, 64]}}},
        r"input_size \[100, 64\] has a side of 100, not divisible by 64: the nearest valid sides are 64 "
        r"and 128",
    ),
    (
        {"tune": {"thresholds": {"start": 0}}},
        r"tune\.thresholds\.start: 0 is less than or equal to the minimum of 0 "
        r"\(First threshold, in \(0, 1\)\)",
    ),
    (
        {"tune": {"thresholds": {"stop": 1.2}}},
        r"tune\.thresholds\.stop: 1\.2 is greater than or equal to the maximum of 1",
    ),
    (
        {"tune": {"thresholds": {"start": 0.6, "stop": 0.4}}},
        r"0 < start <= stop < 1, got start 0\.6 and stop 0\.4",
    ),
    ({"predict": {"shards": 0}}, r"predict\.shards: 0 is less than the minimum of 1"),
    (
        {"models": {**TINY_MODELS, "unet": {**TINY_MODELS["unet"], "optimizer": {"lr": -0.01}}}},
        r"models\.unet\.optimizer\.lr: -0\.01 is less than or equal to the minimum of 0",
    ),
    ({"models": {}}, r"models is empty: configure at least one, e\.g\. unet1024: \{arch: unet1024"),
    ({"folds": {"stratify": "colour"}}, r"'colour' is not one of \['mask_area', 'make', 'none'\]"),
    ({"synthetic": {"image_scale": 2}}, r"synthetic\.image_scale: 2 is greater than the maximum of 1"),
    (
        {"synthetic": {"train_car": 3}},
        r"synthetic: unknown key 'train_car' \(did you mean 'train_cars'\?\); valid keys: train_cars",
    ),
    (
        {"ensemble": {"weights": {"unet": -1}}},
        r"ensemble\.weights\.unet: -1 is less than the minimum of 0",
    ),
    ({"ensemble": {"weights": {"vgg": 1}}}, r"\['vgg'\], which are not in the ensemble; its models are"),
    ({"predict": {"tta": {"scales": []}}}, r"predict\.tta\.scales: \[\] should be non-empty"),
    ({"dataset": "local"}, r"local\.source_dir is empty but dataset is 'local': set it to the folder"),
]
# Snakemake's own parse of the workflow (the Snakefile, its config check) for each folder given,
# in one interpreter: each rejection's message, or null for a config it accepts.
PARSE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings
said = {}
for folder in sys.argv[1:]:
    try:
        with SnakemakeApi(OutputSettings()) as api:
            flow = api.workflow(ResourceSettings(), snakefile=Path(folder, "Snakefile"), workdir=Path(folder))
            flow._workflow  # reading it runs the Snakefile, and the config check
        said[folder] = None
    except Exception as error:
        said[folder] = str(error)
print(json.dumps(said))
"""


@pytest.fixture(scope="module")
def rejections(tmp_path_factory: pytest.TempPathFactory) -> list[str | None]:
    """What Snakemake says while reading each of BAD_CONFIGS, all read by one process."""
    works = [
        workflow_copy(tmp_path_factory.mktemp(f"bad_config{index}"), {**TINY, **override})
        for index, (override, _) in enumerate(BAD_CONFIGS)
    ]
    done = subprocess.run(
        [sys.executable, "-c", PARSE, *map(str, works)], capture_output=True, text=True, env=environ(works[0])
    )
    assert done.returncode == 0, done.stderr[-2000:]
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert not any((work / "results").exists() for work in works)  # reading the config runs nothing
    return [said[str(work)] for work in works]


@pytest.mark.parametrize("case", range(len(BAD_CONFIGS)), ids=[str(override) for override, _ in BAD_CONFIGS])
def test_a_bad_config_is_rejected_while_snakemake_reads_it(rejections: list[str | None], case: int) -> None:
    said = rejections[case]
    assert said is not None and "nothing ran" in said
    assert re.search(BAD_CONFIGS[case][1], said), said


def test_a_bad_config_stops_the_snakemake_command_before_any_job(tmp_path: Path) -> None:
    """The command a user types: its exit status, the message on its console, no results/."""
    work = workflow_copy(tmp_path, {**TINY, "dataset": "kagle", "predict": {"shard": 4}})
    result = snakemake(work, "--cores", "1", check=False)
    assert result.returncode != 0
    assert "the config has 2 problems; nothing ran:" in result.stderr
    assert re.search(BAD_CONFIGS[0][1], result.stderr), result.stderr[-2000:]
    assert "predict: unknown key 'shard' (did you mean 'shards'?)" in result.stderr
    assert not (work / "results").exists()


@pytest.mark.slow  # a copy of the session's finished run, which runs the whole tiny pipeline
def test_a_config_typo_on_a_finished_run_changes_no_file(finished_run: FinishedRun, tmp_path: Path) -> None:
    work = copy_run(finished_run.work, tmp_path / "work")
    before = _snapshot(work / "results")
    edit_config(work, {"predict.shards": "2"})
    result = snakemake(work, "--cores", "1", check=False)
    assert result.returncode != 0
    assert "predict.shards: '2' is not of type 'integer'" in result.stderr
    assert _snapshot(work / "results") == before


# --- bad data: the data check fails, nothing after it runs ----------------------------------------


def _first(folder: Path) -> Path:
    """The folder's first file by name, but Snakemake's hidden .snakemake_timestamp."""
    return sorted(path for path in folder.iterdir() if not path.name.startswith("."))[0]


def _truncated_jpeg(paths: DatasetPaths) -> tuple[Path, str]:
    image = _first(paths.train_dir)
    image.write_bytes(image.read_bytes()[:-600])
    return image, "truncated JPEG (no end-of-image marker)"


def _zero_byte_gif(paths: DatasetPaths) -> tuple[Path, str]:
    mask = _first(paths.train_masks_dir)
    mask.write_bytes(b"")
    return mask, "zero-byte mask file"


def _mask_of_another_size(paths: DatasetPaths) -> tuple[Path, str]:
    mask = _first(paths.train_masks_dir)
    write_mask(mask, np.ones((10, 12), np.uint8))
    return mask, "mask is 12x10 (WxH), its image is 96x64 (WxH)"


def _image_without_mask(paths: DatasetPaths) -> tuple[Path, str]:
    image = _first(paths.train_dir)
    paths.mask_path(image.name).unlink()
    return image, f"image without a mask (expected {paths.mask_path(image.name)})"


def _mask_without_image(paths: DatasetPaths) -> tuple[Path, str]:
    orphan = paths.mask_path("0123456789ab_01.jpg")
    shutil.copyfile(_first(paths.train_masks_dir), orphan)
    return orphan, f"mask without an image (expected {paths.train_dir / '0123456789ab_01.jpg'})"


def _duplicate_id(paths: DatasetPaths) -> tuple[Path, str]:
    csv = paths.train_masks_csv_path
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines, lines[1]]) + "\n")
    return csv, f"duplicate id {lines[1].split(',')[0]} (2 rows)"


def _car_with_15_views(paths: DatasetPaths) -> tuple[Path, str]:
    car = _first(paths.train_dir).name[:12]
    (paths.train_dir / f"{car}_07.jpg").unlink()
    paths.mask_path(f"{car}_07.jpg").unlink()
    return paths.train_dir, f"car {car} has 15 of 16 views (missing {car}_07.jpg)"


def _csv_row_disagreeing_with_gif(paths: DatasetPaths) -> tuple[Path, str]:
    mask_path = _first(paths.train_masks_dir)
    mask = read_mask(mask_path)
    mask[0, :3] ^= 1  # three pixels flipped
    write_mask(mask_path, mask)
    img = mask_path.name.replace("_mask.gif", ".jpg")
    return paths.train_masks_csv_path, f"row {img} disagrees with {mask_path.name} in 3 pixel(s)"


def _non_image_file(paths: DatasetPaths) -> tuple[Path, str]:
    notes = paths.test_dir / "notes.txt"
    notes.write_text("to do\n")
    return notes, "not a competition image"


CORRUPTIONS: dict[str, Callable[[DatasetPaths], tuple[Path, str]]] = {
    "truncated JPEG": _truncated_jpeg,
    "zero-byte GIF": _zero_byte_gif,
    "mask size differs from its image": _mask_of_another_size,
    "image without a mask": _image_without_mask,
    "mask without an image": _mask_without_image,
    "duplicate id": _duplicate_id,
    "car with fewer than 16 views": _car_with_15_views,
    "csv row disagrees with its GIF": _csv_row_disagreeing_with_gif,
    "non-image file among the images": _non_image_file,
}


@pytest.fixture(scope="module")
def checked_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny config's data, checked and split into folds: the run the corruptions start from."""
    work = workflow_copy(tmp_path_factory.mktemp("checked_data"), TINY)
    snakemake(work, "--cores", "2", "results/folds.csv")
    return work


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_bad_data_stops_the_run_at_the_data_check(checked_data: Path, tmp_path: Path, case: str) -> None:
    work = copy_run(checked_data, tmp_path / "work")
    folds = work / "results/folds.csv"
    folds_before = (folds.read_bytes(), folds.stat().st_mtime_ns)
    path, problem = CORRUPTIONS[case](DatasetPaths(work / "results/data"))

    result = snakemake(work, "--cores", "1", "--forcerun", "validate_data", check=False)
    assert result.returncode != 0
    expected = f"{path}: {problem}".replace(f"{work}/", "")  # the rule names paths from the run's folder
    assert expected in (work / "results/logs/validate_data.log").read_text()
    assert expected in result.stderr  # the end of the log is also on the console
    assert "Error in rule validate_data" in result.stderr
    assert (folds.read_bytes(), folds.stat().st_mtime_ns) == folds_before
    assert not (work / "results/data_report.json").exists()
    assert not (work / "results/models").exists()
    assert not (work / "results/logs/train").exists()


# --- failures during training and prediction ------------------------------------------------------


@pytest.mark.slow
def test_a_nan_loss_stops_training_before_weights_and_nothing_after_it_runs(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    work = copy_run(finished_run.work, tmp_path / "work")
    edit_config(work, {"models.unet1024.optimizer": {"lr": 1e30}})
    before = _snapshot(work / "results")

    failed = _the_failed_job(work, "train", "the training loss is nan")
    # the tests' networks train in float32: no precision to give up, so none is advised
    assert re.search(
        r"model 'unet1024': the training loss is nan at epoch 1, step \d+; no weights were written\. "
        r"Lower models\.unet1024\.optimizer\.lr \(it is 1e\+30\)\n",
        failed.read_text(),
    )
    assert "Traceback" not in failed.read_text()
    fold = failed.stem.removeprefix("unet1024_")
    assert not (work / f"results/models/unet1024/{fold}/weights.pt").exists()
    # every other run, the tuning, the shards and the submission are as they were
    assert _unchanged(before, _snapshot(work / "results"), f"models/unet1024/{fold}/") == []


@pytest.mark.slow
def test_running_out_of_gpu_memory_in_training_names_the_model_and_a_smaller_batch(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    work = copy_run(finished_run.work, tmp_path / "work")
    _raise_out_of_memory_in(
        work / "src/carvana/training/task.py", "        inputs, target = batch\n        loss ="
    )
    before = _snapshot(work / "results")

    failed = _the_failed_job(work, "train", "GPU memory")
    model, fold = failed.stem.split("_")
    size = {"unet": "tile_size 204x220", "unet1024": "input_size 64x64", "unet11": "input_size 32x64"}[model]
    assert (
        f"training model '{model}' ({model}, {size}) ran out of GPU memory at batch size 4: "
        f"set models.{model}.batch_size to 2 (it is 4). (CUDA out of memory. Tried to allocate 2.00 GiB)"
    ) in failed.read_text()
    assert not (work / f"results/models/{model}/{fold}/weights.pt").exists()
    assert _unchanged(before, _snapshot(work / "results"), f"models/{model}/{fold}/") == []


@pytest.mark.slow
def test_running_out_of_gpu_memory_in_prediction_halves_the_batch_that_failed(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    work = copy_run(finished_run.work, tmp_path / "work")
    # the prediction shard's networks at their third batch, of 4 images (1, 2, 4, 8, ...); an edit
    # of prediction's own module, which the OOF maps do not run, so that nothing else reruns
    _forward_out_of_memory_in(
        work / "src/carvana/prediction/shard.py", "    stream(ensemble, paths, images,", images=4
    )
    before = _snapshot(work / "results")

    failed = _the_failed_job(work, "predict", "GPU memory")
    left_out = json.loads((work / "results/tuning/thresholds.json").read_text())["left_out"]
    networks = 6 - len(left_out)  # what tuning kept: the tiny unet, which learns nothing, is out
    assert re.search(
        rf"prediction shard [12] \({networks} networks, 2 flips x 1 scales\) ran out of GPU memory at batch "
        r"size 4: set predict\.batch_size to 2 \(it is 8\)\.",
        failed.read_text(),
    )
    shard = f"predict/{failed.stem}.csv"
    assert not (work / "results" / shard).exists()
    assert _unchanged(before, _snapshot(work / "results"), shard) == []


# --- helpers --------------------------------------------------------------------------------------


def _the_failed_job(work: Path, stage: str, problem: str) -> Path:
    """Run the workflow, which must fail, and return the log of its one ``stage`` job that says
    ``problem`` (a second would mean the run went on after the first failure)."""
    result = snakemake(work, "--cores", "1", check=False)
    assert result.returncode != 0
    logs = sorted((work / "results/logs" / stage).glob("*.log"))
    failed = [log for log in logs if problem in log.read_text()]
    assert len(failed) == 1, [log.read_text()[-1500:] for log in logs]
    return failed[0]


def _forward_out_of_memory_in(module: Path, line_start: str, images: int) -> None:
    """Edit the run's copy of ``module``: before the line starting with ``line_start``, the local
    ``ensemble``'s forward is made to raise what CUDA raises when a GPU's memory is full, on a
    batch of ``images`` images."""
    text = module.read_text()
    assert text.count(line_start) == 1, f"{line_start!r} not found once in {module}"
    indent = line_start[: len(line_start) - len(line_start.lstrip())]
    error = 'OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")'
    wrapped = (
        f"{indent}def _full(prepared, forward=ensemble.forward):\n"
        f"{indent}    if len(prepared.sizes) == {images}: raise __import__('torch').{error}\n"
        f"{indent}    return forward(prepared)\n"
        f"{indent}ensemble.forward = _full\n"
    )
    module.write_text(text.replace(line_start, wrapped + line_start))


def _raise_out_of_memory_in(module: Path, line_start: str, when: str = "True") -> None:
    """Edit the run's copy of ``module``: the line starting with ``line_start`` first raises what
    CUDA raises when a GPU's memory is full, if the expression ``when`` holds there."""
    text = module.read_text()
    assert text.count(line_start) == 1, f"{line_start!r} not found once in {module}"
    indent = line_start[: len(line_start) - len(line_start.lstrip())]
    error = 'OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")'
    raising = f'{indent}if {when}: raise __import__("torch").{error}\n'
    module.write_text(text.replace(line_start, raising + line_start))


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file under ``folder`` by its relative path: size and mtime."""
    return {
        path.relative_to(folder).as_posix(): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


def _unchanged(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], failed: str
) -> list[str]:
    """Files of ``before`` that changed or went, but the failed job's own (path starting with
    ``failed``) and the logs and benchmarks, which every job rewrites."""
    skip = (failed, "logs/", "benchmarks/")
    return sorted(
        name for name, stamp in before.items() if not name.startswith(skip) and after.get(name) != stamp
    )
