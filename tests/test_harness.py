"""The benchmark harness runs end to end at a tiny size and writes every figure (speed itself is
the harness's business, not a test's): its counts are those of the run it was asked for, its
ratios are those of the rates it measured, and its printed table shows the figures it wrote."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_harness_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "harness.json"
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    competition = yaml.safe_load((ROOT / "competition.yaml").read_text())
    command = [sys.executable, "-m", "benchmarks.harness", "--config", str(ROOT / "config.yaml")]
    # two folds, so that a network count that ignores them (3, not 6) shows
    command += ["--image-scale", "0.1", "--images", "16", "--folds", "2", "--pairs", "1"]
    command += ["--train-steps", "1", "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())

    # the counts are the run's, worked out from its arguments and the two configs
    assert figures["image_size"] == [128, 192]  # 0.1 of 1280x1918
    tta = config["predict"]["tta"]
    views = (1 + tta["hflip"]) * (1 + tta["vflip"]) * len(tta["scales"])  # identity, flips, their product
    prediction = figures["prediction"]
    assert (prediction["images"], prediction["networks"], prediction["views"]) == (16, 3 * 2, views)
    assert prediction["batch_size"] == config["predict"]["batch_size"]
    training = figures["training"]
    assert set(training) == set(config["models"]) == {"unet", "unet1024", "unet11"}
    for name, entry in config["models"].items():
        assert (training[name]["input_size"], training[name]["batch_size"]) == (
            entry["input_size"],
            entry["batch_size"],
        )
    assert figures["dag"]["train"] == len(competition["models"]) * competition["folds"]["n_folds"] == 15
    assert figures["dag"]["predict"] == competition["predict"]["shards"] == 16
    memory = figures["peak_memory"]
    assert (memory["half"]["images"], memory["all"]["images"]) == (8, 16)

    # each ratio is the quotient of the two figures it names, each a time per image (1 / rate)
    assert prediction["fast_over_forward"] == pytest.approx(
        prediction["forward_images_per_s"] / prediction["fast_images_per_s"]
    )
    assert prediction["naive_over_fast"] == pytest.approx(
        prediction["fast_images_per_s"] / prediction["naive_images_per_s"]
    )
    rle = figures["rle"]
    assert rle["kernel_over_encode"] == pytest.approx(rle["kernel_us"] / rle["encode_us"])
    assert memory["growth"] == pytest.approx(memory["all"]["peak_mib"] / memory["half"]["peak_mib"])

    # the table shows the JSON's figures, each to the digits it prints
    table = result.stdout
    assert (
        f"prediction: 16 images, 6 networks x {views} views, batch {config['predict']['batch_size']}" in table
    )
    rows = [
        ("shard path (decode..write)", prediction["fast_images_per_s"], 2),
        ("networks' forward alone", prediction["forward_images_per_s"], 2),
        ("naive loop", prediction["naive_images_per_s"], 2),
        ("path / forward time", prediction["fast_over_forward"], 3),
        ("naive / path time", prediction["naive_over_fast"], 2),
        ("pixels agreeing with naive", prediction["fast_naive_pixel_agreement"], 5),
        ("RLE encode 1918x1280", rle["encode_us"], 0),
        ("  of which the string", 100 * rle["string_share"], 0),
        ("  kernel encoder", rle["kernel_us"], 0),
        (f"snakemake -n, competition ({figures['dag']['jobs']} jobs)", figures["dag"]["seconds"], 1),
        ("shard peak memory, 8 images", memory["half"]["peak_mib"], 0),
        ("shard peak memory, 16 images", memory["all"]["peak_mib"], 0),
    ]
    for name, entry in config["models"].items():
        height, width = entry["input_size"]
        rows.append((f"train {name} {height}x{width}", training[name]["images_per_s"], 2))
    for label, value, digits in rows:
        printed = re.search(rf"^{re.escape(label)}\s+([\d.]+)", table, re.MULTILINE)
        assert printed is not None, f"no row {label!r} in\n{table}"
        assert float(printed.group(1)) == pytest.approx(value, abs=0.5 * 10**-digits + 1e-9), label
    growth = re.search(r"^shard peak memory, 16 images\s+\d+ MiB \(([\d.]+)x\)", table, re.MULTILINE)
    assert growth is not None and float(growth.group(1)) == pytest.approx(memory["growth"], abs=0.005)
