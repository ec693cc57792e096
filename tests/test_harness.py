"""The benchmark harness runs end to end at a tiny size and writes every figure (speed itself is
the harness's business, not a test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_harness_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "harness.json"
    command = [sys.executable, str(ROOT / "benchmarks/harness.py"), "--image-scale", "0.1", "--images", "16"]
    command += ["--train-steps", "1", "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["image_size"] == [128, 192]  # 0.1 of 1280x1918
    prediction = figures["prediction"]
    assert prediction["images"] == 16 and prediction["networks"] == 3 and prediction["views"] == 2
    for key in ("fast_images_per_s", "forward_images_per_s", "naive_images_per_s"):
        assert prediction[key] > 0
    assert prediction["fast_over_forward"] == pytest.approx(
        prediction["forward_images_per_s"] / prediction["fast_images_per_s"]
    )
    assert 0 < figures["rle"]["string_share"] < 1
    assert set(figures["training"]) == {"unet", "unet1024", "unet11"}
    assert figures["dag"]["train"] == 15 and figures["dag"]["predict"] == 16
    memory = figures["peak_memory"]
    assert (memory["half"]["images"], memory["all"]["images"]) == (8, 16)
    assert "path / forward time" in result.stdout and "shard peak memory" in result.stdout
