"""The Snakemake workflow itself: lint, dry runs, config validation, and tiny real runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_runs import (
    BIN,
    ROOT,
    TINY,
    TINY_MODELS,
    FinishedRun,
    copy_run,
    edit_config,
    environ,
    snakemake,
    workflow_copy,
)

from hand_masks import decode, dice
from kaggle_stub import KaggleStub, competition_archives

# The one lint the workflow keeps, by design: a helper that one rule alone calls lives beside that
# rule, in its file, where Snakemake's linter would have every function in common.smk.
KEPT_LINT = "Mixed rules and functions in same snakefile."


def test_lint_finds_nothing_but_helpers_beside_their_rules(tmp_path: Path) -> None:
    """Every rule lint (a log missing, a folder spelled in params instead of taken from the job's
    own paths, ...) fails; the snakefile lint for helpers kept beside their rules does not."""
    result = snakemake(workflow_copy(tmp_path), "--lint", check=False)  # exits 1 on any lint
    text = result.stdout + result.stderr
    assert "Lints for rule" not in text, text
    lints = re.findall(r"^\s+\* (.+?):?$", text, re.MULTILINE)
    assert lints and set(lints) == {KEPT_LINT}, text


def test_dry_run_plans_the_data_stages(tmp_path: Path) -> None:
    result = snakemake(workflow_copy(tmp_path), "-n", "--quiet", "rules")
    text = result.stdout + result.stderr
    for rule in (
        "synthesize",
        "validate_data",
        "make_folds",
        "train",
        "tune_threshold",
        "predict",
        "submission",
        "validate_submission",
        "score",
    ):
        assert rule in text
    assert "import_local" not in text  # one data source per run


def test_config_yaml_is_valid_and_every_schema_key_has_description_and_default() -> None:
    import jsonschema

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(config)

    def walk(node: dict[str, object], where: str) -> None:
        required = node.get("required", [])
        for name, sub in node.get("properties", {}).items():  # type: ignore[attr-defined]
            assert "description" in sub, f"{where}{name} has no description"
            assert "default" in sub or name in required, f"{where}{name} has no default"  # type: ignore[operator]
            walk(sub, f"{where}{name}.")

    walk(schema, "")
    walk(schema["$defs"]["model"], "models.<name>.")


@pytest.mark.slow
def test_tiny_run_makes_dataset_report_and_folds_then_nothing_to_do(tmp_path: Path) -> None:
    work = workflow_copy(tmp_path, TINY)
    snakemake(work, "--cores", "2", "results/folds.csv")

    report = json.loads((work / "results/data_report.json").read_text())
    assert report["train_images"] == 4 * 16
    assert report["test_images"] == 2 * 16
    # 0.05 of 1918x1280 is 96x64 (WxH)
    assert report["image_size"] == {"height": 64, "width": 96}
    folds = pd.read_csv(work / "results/folds.csv")
    assert list(folds.columns) == ["img", "car_id", "fold"]
    assert len(folds) == 64
    assert folds.groupby("car_id")["fold"].nunique().max() == 1
    assert sorted(folds.groupby("fold")["car_id"].nunique()) == [2, 2]
    assert (work / "results/truth/test_masks.csv").is_file()
    for rule in ("synthesize", "validate_data", "make_folds"):
        assert (work / f"results/logs/{rule}.log").stat().st_size > 0
        assert (work / f"results/benchmarks/{rule}.tsv").is_file()

    again = snakemake(work, "-n", "results/folds.csv")
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_the_venvs_snakemake_runs_from_a_shell_without_the_venv_on_path(tmp_path: Path) -> None:
    # the README's `.venv/bin/snakemake --cores 2`, typed in a shell that never activated the venv
    work = workflow_copy(tmp_path, TINY)
    env = {**environ(work), "PATH": "/usr/bin:/bin"}
    assert shutil.which("carvana", path=env["PATH"]) is None
    result = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "2", "results/folds.csv"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "command not found" not in result.stdout + result.stderr
    assert len(pd.read_csv(work / "results/folds.csv")) == 4 * 16
    assert "3 of 3 steps (100%) done" in result.stderr


@pytest.mark.slow
def test_changing_the_fold_count_reruns_only_the_folds(tmp_path: Path) -> None:
    work = workflow_copy(tmp_path, TINY)
    snakemake(work, "--cores", "2", "results/folds.csv")
    edit_config(work, {"folds.n_folds": 4})
    plan = snakemake(work, "-n", "results/folds.csv", "--quiet", "rules")
    text = plan.stdout + plan.stderr
    assert "make_folds" in text
    assert "synthesize" not in text
    assert "validate_data" not in text


@pytest.mark.slow
def test_local_source_runs_the_same_stages(tmp_path: Path) -> None:
    source_work = workflow_copy(tmp_path / "a", TINY)
    snakemake(source_work, "--cores", "2", "results/data_report.json")
    source = source_work / "results/data"

    work = workflow_copy(
        tmp_path / "b",
        {"dataset": "local", "local": {"source_dir": str(source), "full_competition": False}},
    )
    snakemake(work, "--cores", "2", "results/folds.csv")
    assert (work / "results/data/train").is_symlink()
    report = json.loads((work / "results/data_report.json").read_text())
    assert report["train_images"] == 64
    # without full_competition the size is read off the data, and every image must share it
    assert report["image_size"] == {"height": 64, "width": 96}


@pytest.mark.slow
def test_tiny_run_goes_from_data_to_a_valid_submission(finished_run: FinishedRun) -> None:
    work = finished_run.work
    assert "Offline score (mean Dice against the generated test masks)" in finished_run.output
    folds = pd.read_csv(work / "results/folds.csv")
    for model in TINY_MODELS:
        for fold in (0, 1):
            run = work / f"results/models/{model}/fold{fold}"
            held_out = sorted(folds.loc[folds["fold"] == fold, "img"])
            assert sorted(pd.read_csv(run / "oof_dice.csv")["img"]) == held_out
            assert len(list((run / "oof").glob("*.png"))) == len(held_out) == 32
            assert len(list((run / "oof_plain").glob("*.png"))) == 32
            epochs = TINY_MODELS[model]["epochs"]  # 1, and 3 for unet1024
            assert pd.read_csv(run / "metrics.csv")["epoch"].tolist() == list(range(1, epochs + 1))
            assert (run / "weights.pt").is_file() and (run / "checkpoints/last.ckpt").is_file()
            assert (work / f"results/benchmarks/train/{model}_fold{fold}.tsv").is_file()
            assert "best epoch" in (work / f"results/logs/train/{model}_fold{fold}.log").read_text()
            assert "OOF Dice" in (work / f"results/logs/oof/{model}_fold{fold}.log").read_text()

    submission = pd.read_csv(work / "results/submission.csv.gz", keep_default_na=False)
    sample = pd.read_csv(work / "results/data/sample_submission.csv")
    assert list(submission.columns) == ["img", "rle_mask"]
    assert submission["img"].tolist() == sample["img"].tolist()  # every test image once, in order
    assert json.loads((work / "results/submission_check.json").read_text())["rows"] == 2 * 16
    assert sorted(p.name for p in (work / "results/predict").glob("*.csv")) == [
        "shard_1-of-2.csv",
        "shard_2-of-2.csv",
    ]
    assert json.loads((work / "results/score.json").read_text())["images"] == 32


@pytest.mark.slow
def test_the_console_has_one_line_per_job_and_the_logs_have_the_rest(finished_run: FinishedRun) -> None:
    """Two training jobs ran at once: their progress bars are in their logs, never on the console,
    which has each job's last line (what it came to) with the job's time."""
    logs = sorted((finished_run.work / "results/logs").rglob("*.log"))
    assert len(logs) == 22
    for log in logs:
        text = log.read_text()
        assert text.startswith("# carvana "), log  # the header: the command, then where and when
        last = text.replace("\r", "\n").strip().splitlines()[-1]
        assert re.search(rf"^{re.escape(last)} \(\d+\.\d s\)$", finished_run.output, re.M), log
    summary = r"best epoch \d of \d, held-out Dice 0\.\d{5} at the input size \("
    for model in TINY_MODELS:
        for fold in (0, 1):
            assert len(re.findall(rf"^{model} fold {fold}: {summary}", finished_run.output, re.M)) == 1
    assert "Epoch 0:" in (finished_run.work / "results/logs/train/unet_fold0.log").read_text()
    assert "Epoch" not in finished_run.output and "it/s" not in finished_run.output
    assert len(re.findall(r"^shard \d: 16 images in .* images/s\) \(", finished_run.output, re.M)) == 2


@pytest.mark.slow
def test_the_network_that_learnt_nothing_is_flagged_left_out_and_said(finished_run: FinishedRun) -> None:
    """The tiny unet trains at a learning rate of 1e-12: its OOF Dice at 0.5 is below tune.flag's
    0.45 on both folds, so auto weights leave both its networks out, and the logs say so."""
    work = finished_run.work
    for fold in (0, 1):
        assert pd.read_csv(work / f"results/models/unet/fold{fold}/oof_dice.csv")["dice"].mean() < 0.45
    tuned = json.loads((work / "results/tuning/thresholds.json").read_text())
    assert {"unet/fold0", "unet/fold1"} <= set(tuned["left_out"]) == set(tuned["flagged"])
    assert tuned["weights"]["unet"] == 0 and sum(tuned["weights"].values()) == pytest.approx(1)
    log = (work / "results/logs/tune_threshold.log").read_text()
    assert (
        "warning: unet/fold0: OOF Dice" in log and "left out of the ensemble (ensemble.weights: auto)" in log
    )
    predicted = (work / "results/logs/predict/shard_1-of-2.log").read_text()
    assert f"left out as learnt nothing: {', '.join(tuned['left_out'])}" in predicted
    assert f"{6 - len(tuned['left_out'])} networks" in predicted


@pytest.mark.slow
def test_the_ablation_table_holds_each_step_with_the_tables_own_figures(finished_run: FinishedRun) -> None:
    work = finished_run.work
    ablation = pd.read_csv(work / "results/tuning/ablation.csv").set_index("step")
    steps = [f"{model} {tta} TTA" for model in TINY_MODELS for tta in ("without", "with")]
    steps += ["equal-weight ensemble", "tuned-weight ensemble", "tuned weights, chosen on the other folds"]
    assert ablation.index.tolist() == [*steps, "final recipe"]
    scores = pd.read_csv(work / "results/tuning/oof_scores.csv", dtype={"fold": str})
    tuned = json.loads((work / "results/tuning/thresholds.json").read_text())
    for model in TINY_MODELS:
        row = scores[(scores["model"] == model) & (scores["fold"] == "all")].iloc[0]
        assert ablation.loc[f"{model} with TTA", "dice"] == pytest.approx(row["dice"], abs=1e-6)
        assert ablation.loc[f"{model} with TTA", "compared_with"] == f"{model} without TTA"
        # the plain maps' Dice at 0.5, from the OOF jobs' own tables
        plain = pd.concat(pd.read_csv(work / f"results/models/{model}/fold{k}/oof_dice.csv") for k in (0, 1))
        assert ablation.loc[f"{model} without TTA", "dice_at_0.5"] == pytest.approx(
            plain["dice_plain"].mean(), abs=1e-5
        )
    final = ablation.loc["final recipe"]
    assert final["dice"] == pytest.approx(tuned["ensemble"]["dice"], abs=1e-6)
    assert final["threshold"] == pytest.approx(tuned["threshold"])
    assert 0 <= final["improved"] + final["worsened"] <= 64
    folds = [float(final["dice_fold0"]), float(final["dice_fold1"])]
    assert final["dice_fold_mean"] == pytest.approx(np.mean(folds), abs=1e-6)
    assert final["dice_fold_std"] == pytest.approx(np.std(folds, ddof=1), abs=1e-6)


@pytest.mark.slow
def test_the_tuned_thresholds_are_the_best_of_the_oof_dice_worked_out_here(finished_run: FinishedRun) -> None:
    """Dice against threshold, recomputed in NumPy from the OOF maps and train_masks.csv: each
    member's written threshold scores the best mean Dice of the grid, and the tables hold the
    Dice of that threshold, per image and per fold, and at 0.5."""
    work = finished_run.work
    config = yaml.safe_load((work / "config.yaml").read_text())
    grid = config["tune"]["thresholds"]
    # thresholds in hundredths, so that "p >= threshold" is exact in integers
    hundredths = np.arange(
        round(grid["start"] * 100), round(grid["stop"] * 100) + 1, round(grid["step"] * 100)
    )
    assert np.allclose(hundredths / 100, np.arange(grid["start"], grid["stop"] + 1e-9, grid["step"]))
    thresholds = json.loads((work / "results/tuning/thresholds.json").read_text())
    assert config["ensemble"]["weights"] == "auto" and thresholds["weights_chosen"] == "auto"
    weights, left_out = thresholds["weights"], set(thresholds["left_out"])
    steps = 255 * len(TINY_MODELS)  # the ensemble's map, in steps of 1 / (255 x members)
    folds = pd.read_csv(work / "results/folds.csv").sort_values("img", ignore_index=True)
    masks = pd.read_csv(work / "results/data/train_masks.csv").set_index("img")["rle_mask"]
    curves: dict[str, list[list[float]]] = {member: [] for member in [*TINY_MODELS, "ensemble"]}
    for img, fold in zip(folds["img"], folds["fold"], strict=True):
        truth = decode(masks[img], 64, 96)
        assert truth.any() and not truth.all(), f"degenerate fixture: {img}'s mask"
        maps = []
        for model in TINY_MODELS:
            oof = work / f"results/models/{model}/fold{fold}/oof/{img.removesuffix('.jpg')}.png"
            maps.append(cv2.imread(str(oof), cv2.IMREAD_UNCHANGED).astype(np.int64))  # p x 255
            curves[model].append([dice(maps[-1] * 100 >= k * 255, truth) for k in hundredths])
        # the weighted mean of the maps of the networks not left out, rounded to the nearest step
        kept = [
            (weights[m], p)
            for m, p in zip(TINY_MODELS, maps, strict=True)
            if f"{m}/fold{fold}" not in left_out
        ]
        level = np.rint(sum(w * p for w, p in kept) * len(maps) / sum(w for w, _ in kept))
        curves["ensemble"].append([dice(level * 100 >= k * steps, truth) for k in hundredths])

    chosen = {**thresholds["models"], "ensemble": thresholds["ensemble"]}
    assert set(chosen) == {*TINY_MODELS, "ensemble"}
    assert thresholds["threshold"] == thresholds["ensemble"]["threshold"]  # the one prediction uses
    scores = pd.read_csv(work / "results/tuning/oof_scores.csv", dtype={"fold": str})
    assert len(scores) == 4 * 3  # three models and the ensemble x (all, fold 0, fold 1)
    per_image = pd.read_csv(work / "results/tuning/oof_images.csv").sort_values("img", ignore_index=True)
    assert per_image["img"].tolist() == folds["img"].tolist()
    at_half = int(np.flatnonzero(hundredths == 50)[0])
    for member, curve in curves.items():
        table = np.array(curve)  # (images, thresholds)
        mean = table.mean(axis=0)
        column = int(np.flatnonzero(hundredths == round(chosen[member]["threshold"] * 100))[0])
        assert mean[column] == pytest.approx(mean.max(), abs=1e-12), (member, mean.round(4).tolist())
        assert chosen[member]["dice"] == pytest.approx(mean[column], abs=1e-9)
        np.testing.assert_allclose(per_image[member], table[:, column], atol=1e-6)
        for fold, rows in [("all", slice(None)), ("0", folds["fold"] == 0), ("1", folds["fold"] == 1)]:
            (row,) = scores[(scores["model"] == member) & (scores["fold"] == fold)].to_dict("records")
            assert row["threshold"] == pytest.approx(chosen[member]["threshold"])
            assert row["dice"] == pytest.approx(table[rows, column].mean(), abs=1e-6)
            assert row["dice_at_0.5"] == pytest.approx(table[rows, at_half].mean(), abs=1e-6)
    # a curve flat across the grid would let any threshold pass; this run's ensemble curve runs
    # from 0.41 (at 0.46) down to 0 (from 0.53 up): its maps lie between 0.45 and 0.47
    ensemble = np.array(curves["ensemble"]).mean(axis=0)
    assert ensemble.max() - ensemble.min() > 0.1


@pytest.mark.slow
def test_the_offline_score_is_the_submissions_dice_worked_out_here(finished_run: FinishedRun) -> None:
    """score.json against the submission scored in NumPy on the hidden test masks, and above what
    an empty, an all-car or a transposed submission scores there."""
    work = finished_run.work
    truth = pd.read_csv(work / "results/truth/test_masks.csv").set_index("img")["rle_mask"]
    submission = pd.read_csv(work / "results/submission.csv.gz", keep_default_na=False)
    predicted = submission.set_index("img")["rle_mask"]
    assert sorted(predicted.index) == sorted(truth.index)
    ours, empty, all_car, transposed = [], [], [], []
    for img in truth.index:
        mask = decode(truth[img], 64, 96)
        assert mask.any() and not mask.all(), f"degenerate fixture: {img}'s mask"
        ours.append(dice(decode(predicted[img], 64, 96), mask))
        empty.append(dice(np.zeros_like(mask), mask))
        all_car.append(dice(np.ones_like(mask), mask))
        # the true mask written column-major and read back row-major, as a transposed submission
        transposed.append(dice(mask.ravel(order="F").reshape(mask.shape), mask))
    score = json.loads((work / "results/score.json").read_text())
    assert score["mean_dice"] == pytest.approx(np.mean(ours), abs=1e-9)
    assert score["min_dice"] == pytest.approx(np.min(ours), abs=1e-9)
    baselines = f"empty {np.mean(empty):.3f}, all car {np.mean(all_car):.3f}, transposed truth "
    baselines += f"{np.mean(transposed):.3f}, submission {np.mean(ours):.3f}"
    # Measured on this run: empty 0 (every test mask has a car), every pixel car 0.351, the true
    # masks transposed 0.326, the submission 0.585 (unet1024's 3 epochs at lr 0.003 carry it).
    assert np.mean(empty) == 0, baselines
    assert np.mean(ours) >= max(np.mean(all_car), np.mean(transposed)) + 0.1, baselines


@pytest.mark.slow
def test_every_rule_of_the_run_wrote_its_log_and_benchmark(finished_run: FinishedRun) -> None:
    results = finished_run.work / "results"
    jobs = ["synthesize", "validate_data", "make_folds", "tune_threshold", "submission"]
    jobs += ["validate_submission", "score", "report_figures", "predict/shard_1-of-2", "predict/shard_2-of-2"]
    jobs += [f"train/{model}_fold{fold}" for model in TINY_MODELS for fold in (0, 1)]
    for job in jobs:
        assert (results / f"logs/{job}.log").stat().st_size > 0, job
        benchmark = pd.read_csv(results / f"benchmarks/{job}.tsv", sep="\t")
        assert benchmark["s"].iloc[0] > 0, job


@pytest.mark.slow
def test_network_jobs_of_the_run_each_leased_a_fake_gpu(finished_run: FinishedRun) -> None:
    logs = finished_run.work / "results/logs"
    leased = {
        path.name: re.search(r"GPU: leased device\(s\) (\d) of 0,1", path.read_text())
        for path in [*logs.glob("train/*.log"), *logs.glob("predict/*.log")]
    }
    assert len(leased) == 6 + 2
    assert all(match is not None for match in leased.values()), leased


# Put on PYTHONPATH, Python imports this in every process of a run. In a job started as
# ``carvana predict`` (after ``carvana with-gpus`` leased its device and replaced itself with it),
# it records the job's CUDA_VISIBLE_DEVICES in ARRIVED_DIR and waits until two jobs have arrived:
# both shards then hold their leases at once, whatever the machine's load.
BOTH_SHARDS_AT_ONCE = """
import os
import sys
import time
from pathlib import Path

folder = os.environ.get("ARRIVED_DIR")
if folder and sys.argv[1:2] == ["predict"]:
    arrived = Path(folder)
    (arrived / f".{os.getpid()}").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
    (arrived / f".{os.getpid()}").replace(arrived / str(os.getpid()))
    deadline = time.monotonic() + 300  # a bound on a job that never comes, not a window to hit
    while len(list(arrived.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
"""


@pytest.mark.slow
def test_two_network_jobs_running_at_once_lease_different_devices(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    work = copy_run(finished_run.work, tmp_path / "work")
    hook, arrived = tmp_path / "hook", tmp_path / "arrived"
    hook.mkdir()
    arrived.mkdir()
    (hook / "sitecustomize.py").write_text(BOTH_SHARDS_AT_ONCE)
    env = environ(
        work,
        CARVANA_GPU_DEVICES="0,1",
        CARVANA_GPU_LOCK_DIR=str(tmp_path / "locks"),
        ARRIVED_DIR=str(arrived),
        PYTHONPATH=f"{hook}:{work / 'src'}",
    )
    shards = ["results/predict/shard_1-of-2.csv", "results/predict/shard_2-of-2.csv"]
    result = snakemake(work, *shards, "--cores", "2", "--forcerun", "predict", env=env)
    assert "2 of 2 steps (100%) done" in result.stderr
    # both shards waited for each other while holding their leases: a lease given only while its
    # device is free gave them one device each
    devices = sorted(path.read_text() for path in arrived.iterdir())
    assert devices == ["0", "1"], devices
    logs = "".join((work / "results/logs/predict" / f"shard_{n}-of-2.log").read_text() for n in (1, 2))
    assert sorted(re.findall(r"GPU: leased device\(s\) (\d) of 0,1", logs)) == ["0", "1"]


@pytest.mark.slow  # runs the data stages' jobs (download, import, data check), not a dry run
def test_the_download_rule_fetches_the_archives_into_a_checked_dataset(tiny_dataset, tmp_path: Path) -> None:
    work = workflow_copy(tmp_path, {"dataset": "kaggle", "kaggle": {"full_competition": False}})
    home = tmp_path / "home"
    home.mkdir()
    files = competition_archives(tiny_dataset.data_dir)
    with KaggleStub(files, lifetime_s=600) as stub:  # a loaded machine may take minutes
        env = stub.environ(environ(work, HOME=str(home), KAGGLE_USERNAME="u", KAGGLE_KEY="k3y-k3y-k3y"))
        snakemake(work, "--cores", "2", "results/data_report.json", env=env)
        fetched = sorted(
            body["fileName"] for _, path, body in stub.requests if path.endswith("DownloadDataFile")
        )
        assert fetched == sorted(files)
        report = json.loads((work / "results/data_report.json").read_text())
        assert report["train_images"] == len(list((tiny_dataset.data_dir / "train").iterdir()))
        assert report["test_images"] == len(list((tiny_dataset.data_dir / "test").iterdir()))
        again = snakemake(work, "-n", "results/data_report.json", env=env)
        assert "Nothing to be done" in again.stdout + again.stderr
    logs = "".join(path.read_text() for path in (work / "results/logs").rglob("*.log"))
    assert "k3y-k3y-k3y" not in logs


def test_the_competition_config_plans_the_whole_competition(tmp_path: Path) -> None:
    """competition.yaml with a pseudo-labelling round: every stage of both rounds at the
    competition's counts (5 folds x 3 models; the 100,064 test images in 16 shards, for
    prediction and for each fold's labels alike, so the plan does not grow with the test set)."""
    work = workflow_copy(tmp_path)
    config = yaml.safe_load((ROOT / "competition.yaml").read_text())
    config["pseudo"]["rounds"] = 1
    (work / "competition.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(work, "-n", "-p", "--configfile", "competition.yaml")
    out = result.stdout
    stats = out[out.index("Job stats:") :]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", stats[: stats.index("total")], re.MULTILINE))
    assert counts == {
        **{"download": "6", "import_kaggle": "1", "validate_data": "1", "make_folds": "1"},
        **{"pretrained_vgg11": "1", "train": "30", "oof": "30", "tune_threshold": "2", "predict": "32"},
        **{"submission": "2", "validate_submission": "2", "report_figures": "1", "all": "1"},
        **{"pseudo_labels": "80", "pseudo_labels_table": "5", "pseudo_rounds": "1"},
    }
    shards = re.findall(r"carvana pseudo-labels --fold (\d) --shard (\d+) --shards 16 ", out)
    assert sorted(shards) == sorted((str(fold), str(index)) for fold in range(5) for index in range(1, 17))
    # read over config.yaml: the competition's own settings win, none of the offline ones leak in
    unet1024 = re.search(r"carvana train --model unet1024 .*?--model-json '(\{.*?\})'", out)
    assert unet1024 is not None
    spec = json.loads(unet1024.group(1))
    assert (spec["width"], spec["input_size"], spec["optimizer"]["name"]) == (1.0, [1024, 1024], "rmsprop")
    assert "--auto-weights --weight-step 0.1" in out and "--weight " not in out
    assert "--compile" not in out


def test_predict_compile_and_workers_reach_every_shard(tmp_path: Path) -> None:
    work = workflow_copy(tmp_path)
    config = yaml.safe_load((ROOT / "competition.yaml").read_text())
    config["predict"].update(compile=True, workers=3)  # and threads: 4
    (work / "compiled.yaml").write_text(yaml.safe_dump(config))
    out = snakemake(work, "-n", "-p", "--cores", "16", "--configfile", "compiled.yaml").stdout
    commands = re.findall(r"carvana predict .*", out)
    assert len(commands) == 16
    assert all(" --compile" in command and " --workers 3 " in command for command in commands)
    assert all(" --threads 7 " in command for command in commands)  # the networks get 4 of 7


def test_submit_refuses_the_offline_dataset_before_any_other_job(tmp_path: Path) -> None:
    work = workflow_copy(tmp_path)
    result = snakemake(work, "--cores", "1", "submit", check=False)
    assert result.returncode != 0
    assert "generated offline dataset, which Kaggle cannot score" in result.stdout + result.stderr
    assert sorted(p.name for p in (work / "results").rglob("*") if p.is_file()) == ["submit.log"]


def test_every_rule_has_a_log_and_a_benchmark_under_results() -> None:
    text = "".join(path.read_text() for path in sorted((ROOT / "workflow/rules").glob("*.smk")))
    blocks = re.split(r"^\s*rule (\w+):\n", text, flags=re.MULTILINE)[1:]
    rules = dict(zip(blocks[::2], blocks[1::2], strict=True))
    assert {"synthesize", "train", "predict", "report_figures", "submit"} <= set(rules)
    for name, body in rules.items():
        # under results/: a round's rules write under {results}, results/ or results/pseudo/round<r>/
        under = r"(?:\{results\}|results(?:/pseudo(?:/round\{round\})?)?)"
        log = re.search(rf"log:\s*\n\s*\"({under}/logs/[^\"]+)\"", body)
        benchmark = re.search(rf"benchmark:\s*\n\s*\"({under}/benchmarks/[^\"]+)\"", body)
        assert log is not None and benchmark is not None, (
            f"rule {name} lacks a log or benchmark under results/"
        )
