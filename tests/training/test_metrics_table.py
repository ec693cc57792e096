"""A job's per-epoch table from Lightning's CSV logs, a resumed run's rows included."""

from __future__ import annotations

from pathlib import Path

from carvana.training.job import epoch_metrics


def test_epoch_metrics_take_a_resumed_runs_rows(tmp_path: Path) -> None:
    for version, rows in (
        (0, "epoch,train_loss,val_dice\n0,0.9,\n0,,0.5\n1,0.7,\n"),
        (1, "epoch,train_loss,val_dice\n1,0.6,\n1,,0.8\n"),
    ):
        folder = tmp_path / f"version_{version}"
        folder.mkdir()
        (folder / "metrics.csv").write_text(rows)
    table = epoch_metrics(tmp_path)
    assert table["epoch"].tolist() == [1, 2]
    assert table["train_loss"].tolist() == [0.9, 0.6]
    assert table["val_dice"].tolist() == [0.5, 0.8]
