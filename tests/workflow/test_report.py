"""The HTML report of a finished tiny run: what it holds, and that it renders in headless Chromium."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from workflow_runs import TINY_MODELS, FinishedRun, snakemake

from carvana import rle
from carvana.metrics import dice as dice_score
from carvana.report import ensemble_oof_mask

pytestmark = pytest.mark.slow

# Chromium as the machine's probe runs it: headless, as root, and with its background network
# traffic off (this machine reaches no outside host).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
]


@pytest.fixture(scope="module")
def report(finished_run: FinishedRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    snakemake(finished_run.work, "--report", str(path))
    return path


def _results(report: Path) -> dict[str, dict[str, str]]:
    match = re.search(r"var results = (\{.*?\});\n", report.read_text(), re.S)
    assert match is not None, "no results in the report"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def _data(entry: dict[str, str]) -> bytes:
    return base64.b64decode(entry["data_uri"].split("base64,", 1)[1])


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CARVANA_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed: `make test` installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    return found


def _dump_dom(page: Path, tmp_path: Path) -> str:
    result = subprocess.run(
        [
            _chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_report_holds_summary_curves_threshold_plot_gallery_and_score(
    report: Path, finished_run: FinishedRun
) -> None:
    results = _results(report)
    names = {Path(key).name for key in results}
    assert {
        "summary.html",
        "training_curves.png",
        "dice_vs_threshold.png",
        "oof_scores.csv",
        "score.json",
    } <= names
    gallery = sorted(key for key in results if "/worst_oof/" in key)
    assert len(gallery) == 10
    # worst first: the Dice in the names rises
    dice = [float(re.search(r"_dice([\d.]+)\.png$", key).group(1)) for key in gallery]  # type: ignore[union-attr]
    assert dice == sorted(dice)
    per_image = pd.read_csv(finished_run.work / "results/tuning/oof_images.csv")
    assert dice[0] == pytest.approx(per_image["ensemble"].min(), abs=1e-4)
    # the gallery's prediction of the worst image is the one tuning scored
    worst = per_image.sort_values(["ensemble", "img"]).iloc[0]
    tuned = json.loads((finished_run.work / "results/tuning/thresholds.json").read_text())
    work = finished_run.work
    truth_rle = pd.read_csv(work / "results/data/train_masks.csv").set_index("img")["rle_mask"]
    predicted = ensemble_oof_mask(
        work / "results/models",
        worst["img"],
        int(worst["fold"]),
        tuned["weights"],
        tuned["threshold"],
        frozenset(tuned["left_out"]),
    )
    truth = rle.decode(truth_rle[worst["img"]], predicted.shape)
    assert predicted.any() or truth.any()
    assert dice_score(predicted, truth) == pytest.approx(worst["ensemble"], abs=1e-5)

    summary = _data(next(v for k, v in results.items() if k.endswith("summary.html"))).decode()
    score = json.loads((finished_run.work / "results/score.json").read_text())
    assert f"<b>{score['mean_dice']:.5f}</b> over 32 images" in summary
    scores = pd.read_csv(finished_run.work / "results/tuning/oof_scores.csv", dtype={"fold": str})
    for member in [*TINY_MODELS, "ensemble"]:
        row = re.search(rf"<tr><th>{member}</th>(.*?)</tr>", summary)
        assert row is not None, member
        cells = re.findall(r"<td>([^<]*)</td>", row.group(1))
        expected = [
            scores[(scores["model"] == member) & (scores["fold"] == f)]["dice"].iloc[0]
            for f in ["all", "0", "1"]
        ]
        assert [float(cell) for cell in cells[2:]] == pytest.approx(expected, abs=6e-5)
    config = html.unescape(re.search(r'<pre id="config">(.*?)</pre>', summary, re.S).group(1))  # type: ignore[union-attr]
    assert "n_folds: 2" in config and "unet1024:" in config
    # tuning's warnings, one item each: the tiny unet learnt nothing on either fold
    warnings = re.search(r'<ul id="warnings">(.*?)</ul>', summary, re.S)
    assert warnings is not None
    items = [html.unescape(item) for item in re.findall(r"<li>(.*?)</li>", warnings.group(1))]
    assert items == tuned["warnings"] and any(item.startswith("unet/fold0: OOF Dice") for item in items)
    # the ablation table, a row per step with its Dice and the fold spread from ablation.csv
    ablation = pd.read_csv(work / "results/tuning/ablation.csv")
    table = re.search(r'<table id="ablation">(.*?)</table>', summary, re.S)
    assert table is not None
    for step in ablation.to_dict("records"):
        row = re.search(rf"<tr><th>{re.escape(html.escape(step['step']))}</th>(.*?)</tr>", table.group(1))
        assert row is not None, step["step"]
        cells = re.findall(r"<td>([^<]*)</td>", row.group(1))
        assert float(cells[2]) == pytest.approx(step["dice"], abs=6e-5)
        assert html.unescape(cells[3]) == f"{step['dice_fold_mean']:.4f} \u00b1 {step['dice_fold_std']:.4f}"


def test_the_report_renders_in_chromium_and_its_images_load(report: Path, tmp_path: Path) -> None:
    dom = _dump_dom(report, tmp_path)
    app = dom[dom.index('id="app"') :]
    for category in ("Summary", "Training", "Out-of-fold", "Score"):
        assert f">{category}<" in app, f"the report's app did not render category {category}"

    # every image of the report, decoded by Chromium itself: onload counts it, onerror names it
    images = {key: value for key, value in _results(report).items() if value["mime_type"] == "image/png"}
    assert len(images) == 12
    tags = "".join(
        f'<img src="{value["data_uri"]}" onload="loaded(this)" onerror="failed(\'{Path(key).name}\')">'
        for key, value in images.items()
    )
    page = tmp_path / "images.html"
    page.write_text(
        "<!doctype html><html><body><p id='status'>waiting</p><script>"
        "var ok = 0, bad = [];"
        "function show() { document.getElementById('status').textContent ="
        " 'loaded ' + ok + ' failed [' + bad.join(',') + ']'; }"
        "function loaded(img) { if (img.naturalWidth > 100 && img.naturalHeight > 100) ok++;"
        " else bad.push('tiny'); show(); }"
        "function failed(name) { bad.push(name); show(); }"
        f"</script>{tags}</body></html>"
    )
    status = re.search(r"<p id=\"status\">(.*?)</p>", _dump_dom(page, tmp_path))
    assert status is not None
    assert status.group(1) == f"loaded {len(images)} failed []"
