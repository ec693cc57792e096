"""``make gpu-check`` (benchmarks/gpu_check/): its arithmetic by hand, and the whole check at a
scale a CPU runs in half a minute, every figure present and positive (their values are the
device's business)."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from benchmarks.gpu_check.models import sized
from benchmarks.gpu_check.projection import makespan, projection
from carvana.models.flops import flops
from carvana.models.spec import model_specs

ROOT = Path(__file__).resolve().parents[1]
COMPETITION = yaml.safe_load((ROOT / "competition.yaml").read_text())


def test_flops_per_image_at_the_competitions_sizes() -> None:
    """Forward GFLOP at width 1 as torch's counter gives them: the UNet on one 572x572 tile,
    unet1024 at 1024x1024, unet11 at 1280x1920; validation takes the UNet's 20 tiles; a training
    step (forward and backward) is three forwards."""
    specs = {
        spec.name: sized(spec, options(), torch.device("cpu")) for spec in model_specs(COMPETITION["models"])
    }
    forward = {"unet": 301.586, "unet1024": 321.217, "unet11": 1928.174}
    for name, gflop in forward.items():
        train = flops(specs[name], train=True) / 1e9
        assert train == pytest.approx(3 * gflop, rel=0.002), name
    assert flops(specs["unet"], train=False) / 1e9 == pytest.approx(20 * 301.586, rel=0.001)
    assert flops(specs["unet11"], train=False) / 1e9 == pytest.approx(1928.174, rel=1e-5)


def test_a_reduced_scale_keeps_the_unets_tiles_valid_and_covering() -> None:
    unet = next(spec for spec in model_specs(COMPETITION["models"]) if spec.name == "unet")
    assert sized(unet, options(), torch.device("cpu")).tile_size == (572, 572)
    small = sized(unet, options(image_scale=0.05, width=0.125), torch.device("cpu"))
    # 64x96 covered by one tile of the smallest sides whose outputs (68, 100) cover it
    assert small.input_size == (64, 96) and small.tile_size == (252, 284)
    assert small.width == 0.125 and small.dropout == 0 and not small.pretrained and small.gpu == 0


def test_jobs_go_longest_first_to_the_first_free_device() -> None:
    assert makespan([3, 5, 3, 4, 3], 1) == 18
    assert makespan([3, 5, 3, 4, 3], 2) == 10  # 5+3+... : (5, 3) and (4, 3, 3)
    assert makespan([3, 5, 3, 4, 3], 8) == 5


def test_the_projection_from_hand_made_rates() -> None:
    """One model of 2 epochs on 5 folds of 5,088 images (4,070.4 trained on, 1,017.6 held out),
    its compiled step the faster; prediction's faster setting at 8 images/s on a path whose
    forward alone runs 10/s with one network per model."""
    rates = {"network_images_per_s": 1.0}
    once = {"shard_seconds": 30.0, "first_batch_seconds": 2.0}  # per shard, and per network in it
    figures: dict[str, Any] = {
        "peak": {"tflops": 100.0},
        "training": {
            "m": {
                "epochs": 2,
                "train_flops_per_image": 3e12,
                "validate_flops_per_image": 1e12,
                "validate_images_per_s": 100.0,
                "eager": {**rates, "images_per_s": 10.0},
                "compiled": {**rates, "images_per_s": 20.0},
            }
        },
        "prediction": {
            "flops_per_image": 2e12,
            "runs": [
                {"compiled": False, "workers": 0, "images_per_s": 4.0, "forward_images_per_s": 5.0, **once},
                {"compiled": True, "workers": 4, "images_per_s": 8.0, "forward_images_per_s": 10.0, **once},
            ],
        },
    }
    config = {"folds": {"n_folds": 5}, "predict": {"shards": 16}}
    result = projection(config, figures, [1, 2])
    job = 2 * (4070.4 / 20 + 1017.6 / 100) + 1017.6 / 100  # epochs of training and validation, OOF maps
    assert result["train_job_hours"]["m"] == pytest.approx(job / 3600)
    assert result["train_setting"] == {"m": "compiled"}
    # five networks per image where one was measured, plus the path's own time beyond the forward;
    # each of the 16 shards starts its loader and warms up five networks per model
    predict = 100_064 * (5 / 10 + (1 / 8 - 1 / 10)) + 16 * (30 + 5 * 2)
    assert result["predict_hours_one_device"] == pytest.approx(predict / 3600)
    assert result["predict_setting"] == {"compiled": True, "workers": 4}
    assert result["hours_by_devices"]["1"] == pytest.approx((5 * job + predict) / 3600)
    assert result["hours_by_devices"]["2"] == pytest.approx((3 * job + 8 * predict / 16) / 3600)
    # 5 jobs x (2 epochs x (4,070.4 x 3 + 1,017.6 x 1) + 1,017.6 x 1) TFLOP, then 100,064 x 5 x 2
    flops = (5 * (2 * (4070.4 * 3 + 1017.6) + 1017.6) + 100_064 * 5 * 2) * 1e12
    assert result["flops"] == pytest.approx(flops)
    assert result["hours_at_peak"] == pytest.approx(flops / 100e12 / 3600)


@pytest.mark.slow
def test_the_check_runs_on_a_cpu_at_a_reduced_scale(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.gpu_check",
        "--image-scale",
        "0.05",
        "--width",
        "0.125",
    ]
    command += ["--train-steps", "2", "--predict-images", "16", "--compile", "off", "--train-workers", "0"]
    command += ["--workers", "0", "1", "--devices", "1", "3", "--device", "cpu", "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["image_size"] == [64, 96] and figures["peak"]["tflops"] > 0
    assert set(figures["training"]) == {"unet", "unet1024", "unet11"}
    for name, measured in figures["training"].items():
        eager = measured["eager"]
        for key in ("network_images_per_s", "images_per_s"):
            assert eager[key] > 0 and eager[key.replace("images_per_s", "achieved")]["peak_share"] > 0
        for key in ("validate_images_per_s", "loader_images_per_s"):
            assert measured[key] > 0, (name, key)
        assert measured["validate_achieved"]["tflops"] > 0
        # the loader runs beside the steps: the slower of the two sets the pace
        assert eager["images_per_s"] == min(eager["network_images_per_s"], measured["loader_images_per_s"])
        assert measured["train_flops_per_image"] > 0 and measured["validate_flops_per_image"] > 0
        assert measured["peak_memory_mib"] > 0 and measured["largest_batch"] >= 1
        assert "compiled" not in measured  # --compile off
    runs = figures["prediction"]["runs"]
    assert [(run["workers"], run["compiled"]) for run in runs] == [(0, False), (1, False)]
    assert all(run["images_per_s"] > 0 and run["forward_images_per_s"] > 0 for run in runs)
    assert all(run["first_batch_seconds"] > 0 and run["shard_seconds"] >= 0 for run in runs)
    assert figures["prediction"]["flops_per_image"] > 0
    hours = figures["projection"]["hours_by_devices"]
    assert set(hours) == {"1", "3"} and hours["1"] > hours["3"] > 0
    assert math.isfinite(hours["1"])
    assert "projected at scale 0.05, not the real cost" in result.stdout


def options(**given: Any) -> argparse.Namespace:
    defaults = {"image_scale": 1.0, "width": None, "train_workers": None}
    return argparse.Namespace(**{**defaults, **given})
