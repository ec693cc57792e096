"""The ``carvana`` command line: the stages run without Snakemake and without any network."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from carvana.cli import build_parser, main


def _synthesize_args(data: Path, truth: Path) -> list[str]:
    """3 train cars and 1 test car at 0.04 of 1918x1280: 77x51 (WxH)."""
    return [
        *("synthesize", "--data-dir", str(data), "--truth-path", str(truth)),
        *("--train-cars", "3", "--test-cars", "1", "--image-scale", "0.04"),
    ]


def test_every_stage_is_a_subcommand() -> None:
    help_text = build_parser().format_help()
    for stage in ("synthesize", "import-files", "validate-data", "make-folds", "train", "models"):
        assert stage in help_text


def test_data_stages_run_by_hand_with_the_network_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    data, truth = tmp_path / "data", tmp_path / "truth.csv"
    assert main(_synthesize_args(data, truth)) == 0
    report = tmp_path / "report.json"
    # 0.04 of 1918x1280 is 77x51 (WxH)
    assert (
        main(
            [
                "validate-data",
                "--data-dir",
                str(data),
                "--report-path",
                str(report),
                "--image-size",
                "51",
                "77",
            ]
        )
        == 0
    )
    folds = tmp_path / "folds.csv"
    assert main(["make-folds", "--data-dir", str(data), "--folds-path", str(folds), "--n-folds", "3"]) == 0
    table = pd.read_csv(folds)
    assert len(table) == 3 * 16
    assert sorted(table.groupby("fold")["car_id"].nunique()) == [1, 1, 1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n-folds", "1"], "n_folds must be at least 2"),
        (["--stratify", "colour"], "stratify must be one of mask_area, make, none"),
        (["--n-folds", "9"], "n_folds = 9 is more than the 3 cars"),
    ],
)
def test_bad_fold_flags_exit_2_with_the_valid_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    data = tmp_path / "data"
    assert main(_synthesize_args(data, tmp_path / "t.csv")) == 0
    capsys.readouterr()
    folds = tmp_path / "folds.csv"
    assert main(["make-folds", "--data-dir", str(data), "--folds-path", str(folds), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not folds.exists()


def test_a_bad_image_scale_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    code = main(
        [
            "synthesize",
            "--data-dir",
            str(data),
            "--truth-path",
            str(tmp_path / "t.csv"),
            "--image-scale",
            "1.5",
        ]
    )
    assert code == 2
    assert "image_scale must be in (0, 1], got 1.5" in capsys.readouterr().err
    assert not data.exists()


def test_models_lists_every_configured_model_with_its_parameter_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "models:\n"
        "  big11: {arch: unet11, input_size: [1280, 1920]}\n"
        "  small: {arch: unet1024, width: 0.125, input_size: [128, 192]}\n"
        "  paper: {arch: unet, input_size: [1280, 1918], tile_size: [572, 572]}\n"
    )
    assert main(["models", "--config-file", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "arch", "input", "(HxW)", "tile", "(HxW)", "parameters"]
    assert lines[1].split() == ["big11", "unet11", "1280x1920", "-", "22,927,393"]
    assert lines[2].split()[:3] == ["small", "unet1024", "x0.125"]
    assert lines[3].split() == ["paper", "unet", "1280x1918", "572x572", "31,043,521"]


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("config_file", "counts"),
    [
        ("competition.yaml", ["31,043,521", "35,371,873", "22,927,393"]),  # the references, width 1
        # unet11 at width 0.125 (f = 4): encoder 3x3 convs 3-8-16-32-32-64-64-64-64 = 144,560; decoder
        # blocks 55,392 + 73,824 + 64,592 + 16,168 + 4,052, dec1 436, head 5 = 214,469
        ("config.yaml", ["487,289", "559,121", "359,029"]),
    ],
)
def test_models_lists_each_shipped_config_with_no_pretrained_weights_on_the_machine(
    config_file: str,
    counts: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caches = {
        "TORCH_HOME": tmp_path / "torch",
        "HF_HOME": tmp_path / "hf",
        "XDG_CACHE_HOME": tmp_path / "xdg",
    }
    for name, folder in caches.items():
        monkeypatch.setenv(name, str(folder))
    assert main(["models", "--config-file", str(ROOT / config_file)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [row[0] for row in rows] == ["unet", "unet1024", "unet11"]
    assert [row[-1] for row in rows] == counts
    assert not any(folder.exists() for folder in caches.values())  # nothing fetched or looked up


def test_train_names_the_configured_models_when_asked_for_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("models:\n  a: {arch: unet1024, input_size: [64, 64]}\n")
    argv = ["train", "--model", "b", "--fold", "0", "--config-file", str(config)]
    argv += ["--data-dir", str(tmp_path), "--folds-path", str(tmp_path / "folds.csv")]
    assert main(argv) == 2
    assert "no model 'b' in" in capsys.readouterr().err


def test_the_stages_that_read_only_tables_and_masks_load_no_torch() -> None:
    # torch's import is about 1.7 s of CPU, paid again by every job of these stages in every run;
    # a fresh interpreter, since this one has torch loaded by other tests
    stages = ("submission", "score", "validate_submission", "make_folds", "validate_data", "synthesize")
    code = (
        "import importlib, sys\n"
        f"for stage in {stages!r}:\n"
        "    importlib.import_module('carvana.stages.' + stage)\n"
        "import carvana.submission, carvana.folds, carvana.data.validate, carvana.data.synthetic\n"
        "print(sorted(name for name in ('torch', 'lightning', 'torchvision') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_command_leaves_with_the_stages_status_after_its_output_and_the_exit_handlers(
    tmp_path: Path,
) -> None:
    """``command`` skips the interpreter's teardown: what a normal exit does first must still
    happen, in its order (the stage's buffered output, then the exit handlers), with main's status."""
    code = (
        "import atexit, sys\n"
        "from carvana.cli import command\n"
        "atexit.register(print, 'an exit handler ran')\n"  # buffered, as the stage's own lines
        "sys.argv[0] = 'carvana'\n"
        "command()\n"
    )

    buffered = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}

    def carvana(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, env=buffered
        )

    made = carvana(*_synthesize_args(tmp_path / "data", tmp_path / "truth.csv"))
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines() == [
        f"synthesized 3 train and 1 test cars (48 + 16 images, 77x51 WxH) in {tmp_path / 'data'}",
        "an exit handler ran",
    ]
    assert len(list((tmp_path / "data/train").iterdir())) == 48
    missing = carvana("validate-data", "--data-dir", str(tmp_path / "nothing"), "--report-path", "r.json")
    assert missing.returncode == 1  # a failed check
    assert missing.stderr.startswith("carvana validate-data: 6 problem(s) in the dataset")
    assert missing.stdout == "an exit handler ran\n"
    bad = carvana(*_synthesize_args(tmp_path / "other", tmp_path / "t.csv")[:-1], "7")
    assert bad.returncode == 2 and "image_scale" in bad.stderr  # a bad value
