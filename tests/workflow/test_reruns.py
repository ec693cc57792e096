"""What reruns after which change: dry runs on copies of one finished tiny run, a test per change.

The tiny run has three models (unet, unet1024, unet11) on two folds and two prediction shards.
Each test copies the finished run, makes one change, and reads the jobs a dry run plans.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from workflow_runs import FinishedRun, copy_run, edit_config, snakemake

pytestmark = pytest.mark.slow

DOWNSTREAM_OF_TUNING = {
    "tune_threshold": 1,
    "predict": 2,
    "submission": 1,
    "validate_submission": 1,
    "score": 1,
    "report_figures": 1,
    "all": 1,
}
DOWNSTREAM_OF_PREDICTION = {
    "predict": 2,
    "submission": 1,
    "validate_submission": 1,
    "score": 1,
    "report_figures": 1,
    "all": 1,
}


def _copy(finished_run: FinishedRun, tmp_path: Path) -> Path:
    return copy_run(finished_run.work, tmp_path / "work")


def _plan(work: Path) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """The jobs a dry run plans: their count per rule, and the (model, fold) of training jobs."""
    result = snakemake(work, "-n")
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}, set()
    stats = text[text.index("Job stats:") : text.index("total")]
    counts = {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", stats, re.MULTILINE)}
    jobs = re.split(r"^(?=(?:local)?rule \w+:$)", text, flags=re.MULTILINE)
    trained = {
        match
        for job in jobs
        if job.startswith("rule train:")
        for match in re.findall(r"wildcards: results=results, model=(\w+), fold=(\d+)", job)
    }
    return counts, trained


def _retrained(jobs: int) -> dict[str, int]:
    """The jobs of ``jobs`` training jobs rerun: their training, their OOF maps, tuning onwards."""
    return {"train": jobs, "oof": jobs, **DOWNSTREAM_OF_TUNING}


def _append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def test_nothing_changed_nothing_to_do(finished_run: FinishedRun, tmp_path: Path) -> None:
    # the dry run has no fake GPUs (gpu=0): the GPU count is no reason to rerun
    assert _plan(_copy(finished_run, tmp_path)) == ({}, set())


def test_one_models_hyper_parameter_reruns_that_models_training_then_tuning_onwards(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    work = _copy(finished_run, tmp_path)
    edit_config(work, {"models.unet11.optimizer": {"name": "adam", "lr": 0.002}})
    counts, trained = _plan(work)
    assert counts == _retrained(2)
    assert trained == {("unet11", "0"), ("unet11", "1")}


def test_how_a_model_runs_reruns_its_jobs_which_resume_their_checkpoints(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    """threads, workers and compile are in the job's command, so its jobs run again; they
    resume their finished checkpoints (tests/training/test_job.py), training nothing again."""
    work = _copy(finished_run, tmp_path)
    edit_config(work, {"models.unet.workers": 1, "models.unet.compile": True})
    counts, trained = _plan(work)
    assert counts == _retrained(2)
    assert trained == {("unet", "0"), ("unet", "1")}


def test_tta_settings_rerun_the_oof_maps_tuning_and_prediction_never_training(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    """Tuning fits the threshold and weights to maps made with the test maps' TTA: a TTA change
    remakes every network's OOF maps, then tuning onwards; no network is trained again."""
    work = _copy(finished_run, tmp_path)
    edit_config(work, {"predict.tta.vflip": True})
    assert _plan(work) == ({"oof": 6, **DOWNSTREAM_OF_TUNING}, set())


def test_the_prediction_batch_reruns_prediction_and_the_oof_maps_never_training(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    work = _copy(finished_run, tmp_path)
    edit_config(work, {"predict.batch_size": 3})
    assert _plan(work) == ({"oof": 6, **DOWNSTREAM_OF_TUNING}, set())


def test_compiling_the_shards_reruns_prediction_alone(finished_run: FinishedRun, tmp_path: Path) -> None:
    work = _copy(finished_run, tmp_path)
    edit_config(work, {"predict.compile": True})
    assert _plan(work) == (DOWNSTREAM_OF_PREDICTION, set())


def test_ensemble_weights_rerun_tuning_onwards(finished_run: FinishedRun, tmp_path: Path) -> None:
    """Prediction reads the weights from thresholds.json, which tuning writes."""
    work = _copy(finished_run, tmp_path)
    edit_config(work, {"ensemble.weights": {"unet1024": 2}})
    assert _plan(work) == (DOWNSTREAM_OF_TUNING, set())


def test_the_threshold_grid_reruns_tuning_onwards(finished_run: FinishedRun, tmp_path: Path) -> None:
    work = _copy(finished_run, tmp_path)
    edit_config(work, {"tune.thresholds": {"start": 0.2, "stop": 0.8, "step": 0.02}})
    assert _plan(work) == (DOWNSTREAM_OF_TUNING, set())


def test_an_architecture_source_edit_retrains_that_model_only(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    work = _copy(finished_run, tmp_path)
    _append(work / "src/carvana/models/unet11.py", "\nDECODER_NOTE = 'changed'\n")
    counts, trained = _plan(work)
    assert counts == _retrained(2)
    assert trained == {("unet11", "0"), ("unet11", "1")}


def test_a_comment_or_docstring_edit_reruns_nothing(finished_run: FinishedRun, tmp_path: Path) -> None:
    work = _copy(finished_run, tmp_path)
    layout = work / "src/carvana/layout.py"
    layout.write_text("# a comment\n" + layout.read_text().replace('"""', '"""Reworded. ', 1))
    _append(work / "src/carvana/models/unet11.py", "\n# a comment at the end\n")
    assert _plan(work) == ({}, set())


def test_a_shared_module_used_by_every_stage_reruns_every_stage(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    work = _copy(finished_run, tmp_path)
    _append(work / "src/carvana/layout.py", "\nEXTRA_SETTING = 1\n")
    counts, trained = _plan(work)
    every_stage = {"synthesize": 1, "validate_data": 1, "make_folds": 1}
    assert counts == {**every_stage, **_retrained(6)}
    assert len(trained) == 6


def test_a_shared_module_reruns_only_the_stages_that_import_it(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    work = _copy(finished_run, tmp_path)
    _append(work / "src/carvana/metrics.py", "\nEXTRA_SETTING = 1\n")
    counts, trained = _plan(work)
    # training, the OOF maps and scoring import metrics; the data stages and make_folds do not
    assert counts == _retrained(6)
    assert len(trained) == 6


def test_adding_a_model_trains_it_alone_then_tuning_onwards(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    work = _copy(finished_run, tmp_path)
    config = yaml.safe_load((work / "config.yaml").read_text())
    edit_config(work, {"models.unet11_wide": {**config["models"]["unet11"], "width": 0.25}})
    counts, trained = _plan(work)
    assert counts == _retrained(2)
    assert trained == {("unet11_wide", "0"), ("unet11_wide", "1")}


def test_deleting_one_folds_weights_reruns_that_job_onwards(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    work = _copy(finished_run, tmp_path)
    (work / "results/models/unet1024/fold1/weights.pt").unlink()
    counts, trained = _plan(work)
    assert counts == _retrained(1)
    assert trained == {("unet1024", "1")}
