"""The fast prediction path gives what the naive loop gives (benchmarks/naive_predict.py):
batching, the loader and writer threads, OpenCV's decoding and our RLE change no mask, but for
the odd pixel that float rounding puts on the other side of the threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from benchmarks.naive_predict import naive_predict
from carvana import rle
from carvana.data.images import read_image
from carvana.layout import DatasetPaths
from carvana.models.build import build_model
from carvana.models.inference import mixed_precision_dtype
from carvana.models.spec import ModelSpec
from carvana.prediction.ensemble import Ensemble, fold_batch_norms, load_member, read_member
from carvana.prediction.shard import ShardSpec, kept_weights, predict_shard
from carvana.prediction.tta import TTASpec

MODELS = {
    "unet": {"arch": "unet", "width": 0.0625, "input_size": [32, 48], "tile_size": [204, 220]},
    "unet1024": {"arch": "unet1024", "width": 0.125, "input_size": [64, 64]},
    "unet11": {"arch": "unet11", "width": 0.125, "input_size": [32, 64]},
}
WEIGHTS = {"unet1024": 2.0, "unet11": 0.5}


@pytest.fixture(scope="module")
def weights_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """weights.pt of three networks with random weights and BatchNorm statistics that are not
    the identity (so folding them changes the weights), two folds of unet1024."""
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(3)
    paths = []
    for name, entry in [*MODELS.items(), ("unet1024", MODELS["unet1024"])]:
        spec = ModelSpec.from_entry(name, entry)
        network = build_model(spec)
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        path = root / f"{name}_{len(paths)}.pt"
        torch.save(
            {"spec": spec.to_json(), "fold": len(paths), "epoch": 1, "state_dict": network.state_dict()}, path
        )
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    ("tta", "batch_size"),
    [(TTASpec(hflip=True), 6), (TTASpec(hflip=True, vflip=True, scales=(1.0, 0.75)), 8)],
)
def test_the_fast_path_writes_the_naive_loops_rows(
    tiny_dataset, weights_paths: list[Path], tmp_path: Path, tta: TTASpec, batch_size: int
) -> None:
    paths = DatasetPaths(tiny_dataset.data_dir)
    names = pd.read_csv(paths.sample_submission_path)["img"].tolist()
    members = [load_member(path, torch.device("cpu")) for path in weights_paths]
    images = [paths.image_path("test", name) for name in names]
    # random networks: the median probability of an image as the threshold gives masks of substance
    auto = mixed_precision_dtype(torch.device("cpu"))  # the shard's: bf16 where the CPU has it in hardware
    first = Ensemble(members, tta, torch.device("cpu"), auto, WEIGHTS).probabilities([read_image(images[0])])
    threshold = float(np.median(first[0]))
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"threshold": threshold, "weights": WEIGHTS}))  # tuning's choice

    shard = ShardSpec(1, 1, batch_size=batch_size, tta=tta, gpu=0)
    predict_shard(shard, tiny_dataset.data_dir, weights_paths, thresholds, tmp_path / "fast.csv")
    naive_predict(images, members, tta, WEIGHTS, threshold, tmp_path / "naive.csv", autocast=auto)

    fast, naive = (pd.read_csv(tmp_path / name, dtype=str).fillna("") for name in ("fast.csv", "naive.csv"))
    assert len(fast) == len(names) == 32  # in batches of 1, 2, 4, then 6 or 8, the last of 1
    assert fast["img"].tolist() == names
    # The same masks but for a pixel that rounding puts on the other side of the threshold: the
    # batch size and the thread count pick the convolutions' kernels, hence the order of their sums
    # (measured on one thread: 1 pixel of 196,608 differs; on two: none).
    shape = tiny_dataset.spec.image_size
    differ = [
        int((rle.decode(a, shape) != rle.decode(b, shape)).sum())
        for a, b in zip(fast.rle_mask, naive.rle_mask, strict=True)
    ]
    assert sum(differ) <= 10, differ
    assert fast["rle_mask"].nunique() > 16  # masks of substance, not all empty or full


def test_loader_worker_processes_write_the_threads_rows(tiny_dataset, weights_paths, tmp_path) -> None:
    """``predict.workers``: batches loaded by two DataLoader worker processes, in order."""
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"threshold": 0.5}))
    for workers in (0, 2):
        shard = ShardSpec(2, 2, batch_size=3, gpu=0, workers=workers)  # 16 images: 1, 2, 3, 3, 3, 3, 1
        predict_shard(
            shard, tiny_dataset.data_dir, weights_paths[:2], thresholds, tmp_path / f"{workers}.csv"
        )
    thread, processes = ((tmp_path / f"{workers}.csv").read_bytes() for workers in (0, 2))
    assert thread == processes and thread.count(b"\n") == 17


def test_a_network_tuning_left_out_is_not_blended_in(tiny_dataset, weights_paths, tmp_path) -> None:
    """thresholds.json's left_out drops that network: the rows are those of the ensemble without
    it, and differ from those of the ensemble with it."""
    members = [load_member(path, torch.device("cpu")) for path in weights_paths]
    dropped = f"{members[0].spec.name}/fold{members[0].fold}"
    # random networks: the median probability of an image as the threshold gives masks of substance
    first = DatasetPaths(tiny_dataset.data_dir).image_path("test", "1e77d14d5747_01.jpg")
    auto = mixed_precision_dtype(torch.device("cpu"))
    ensemble = Ensemble(members[1:], TTASpec(), torch.device("cpu"), auto)
    threshold = float(np.median(ensemble.probabilities([read_image(first)])[0]))
    rows = {}
    for name, tuned, paths in [
        ("left_out", {"threshold": threshold, "left_out": [dropped]}, weights_paths),
        ("without", {"threshold": threshold}, weights_paths[1:]),
        ("with", {"threshold": threshold}, weights_paths),
    ]:
        thresholds = tmp_path / f"{name}.json"
        thresholds.write_text(json.dumps(tuned))
        shard = ShardSpec(1, 2, batch_size=4, gpu=0)
        predict_shard(shard, tiny_dataset.data_dir, paths, thresholds, tmp_path / f"{name}.csv")
        rows[name] = (tmp_path / f"{name}.csv").read_bytes()
    assert rows["left_out"] == rows["without"] != rows["with"]
    assert len(set(rows["without"].split(b"\n"))) > 10  # masks of substance, not all empty


def test_folding_batch_norms_keeps_the_networks_function(weights_paths: list[Path]) -> None:
    member = read_member(weights_paths[1])
    spec, plain = member.spec, member.network
    folded = load_member(weights_paths[1], torch.device("cpu")).network
    assert not any(isinstance(module, nn.BatchNorm2d) for module in folded.modules())
    assert sum(isinstance(module, nn.BatchNorm2d) for module in plain.modules()) > 10
    inputs = torch.randn(2, 3, *spec.input_size)
    with torch.no_grad():
        expected, got = plain(inputs), folded(inputs.contiguous(memory_format=torch.channels_last))
    assert (expected - got).abs().max() < 1e-4 * expected.abs().max()


def test_a_network_in_training_mode_keeps_its_batch_norms() -> None:
    network = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    fold_batch_norms(network.train())
    assert isinstance(network[1], nn.BatchNorm2d)


@pytest.mark.parametrize("workers", [0, 1])
def test_an_unreadable_image_stops_the_shard_and_writes_nothing(
    dataset_copy, weights_paths, tmp_path, workers: int
) -> None:
    paths = DatasetPaths(dataset_copy.data_dir)
    names = pd.read_csv(paths.sample_submission_path)["img"].tolist()
    paths.image_path("test", names[20]).write_bytes(b"")  # read by the loader, in batch 5
    out = tmp_path / "out"
    out.mkdir()
    thresholds = out / "thresholds.json"
    thresholds.write_text(json.dumps({"threshold": 0.5}))
    shard = ShardSpec(1, 1, batch_size=8, gpu=0, workers=workers)
    with pytest.raises(ValueError, match=f"{names[20]}: not a readable image"):
        predict_shard(shard, dataset_copy.data_dir, weights_paths[:1], thresholds, out / "shard.csv")
    assert list(out.iterdir()) == [thresholds]


@pytest.mark.slow
def test_compiled_networks_write_the_eager_networks_masks(
    tiny_dataset, weights_paths, tmp_path, monkeypatch
) -> None:
    """``predict.compile``: torch.compile (Inductor, here on the CPU) for both folds of unet1024.
    Its fused kernels round differently, so masks may differ at a few pixels, no more."""
    compiled_calls: list[int] = []  # per torch.compile: the calls of what it returned
    real_compile = torch.compile

    def counting_compile(function, *args, **kwargs):  # type: ignore[no-untyped-def]
        compiled_calls.append(0)
        number, compiled = len(compiled_calls) - 1, real_compile(function, *args, **kwargs)

        def call(*inputs, **keywords):  # type: ignore[no-untyped-def]
            compiled_calls[number] += 1
            return compiled(*inputs, **keywords)

        return call

    monkeypatch.setattr(torch, "compile", counting_compile)
    folds = [weights_paths[1], weights_paths[3]]
    paths = DatasetPaths(tiny_dataset.data_dir)
    first = read_image(paths.image_path("test", pd.read_csv(paths.sample_submission_path)["img"][0]))
    members = [load_member(path, torch.device("cpu")) for path in folds]
    ensemble = Ensemble(members, TTASpec(hflip=True), torch.device("cpu"), torch.bfloat16)
    thresholds = tmp_path / "thresholds.json"  # masks of substance: the median of the first image
    thresholds.write_text(json.dumps({"threshold": float(np.median(ensemble.probabilities([first])[0]))}))
    written = {}
    for compiled in (False, True):
        shard = ShardSpec(1, 1, batch_size=4, tta=TTASpec(hflip=True), gpu=0, compile=compiled)
        written[compiled] = tmp_path / f"compiled_{compiled}.csv"
        predict_shard(shard, tiny_dataset.data_dir, folds, thresholds, written[compiled])
        assert len(compiled_calls) == (2 if compiled else 0)
    # each network ran compiled on every batch of 4 (with the hflip view: 8 inputs): 32 / 4 = 8
    assert compiled_calls == [8, 8]
    eager, compiled = (pd.read_csv(written[key], dtype=str).fillna("") for key in (False, True))
    assert compiled["img"].tolist() == eager["img"].tolist() and len(eager) == 32
    shape = first.shape[:2]
    differing = [
        int((rle.decode(a, shape) != rle.decode(b, shape)).sum())
        for a, b in zip(eager["rle_mask"], compiled["rle_mask"], strict=True)
    ]
    assert sum(differing) <= 0.001 * 32 * shape[0] * shape[1], differing
    assert eager["rle_mask"].nunique() > 16


def test_a_model_with_a_network_left_out_keeps_its_share_of_the_mean(
    tiny_dataset, weights_paths: list[Path], tmp_path: Path
) -> None:
    """unet1024 has two networks (folds 1 and 3) beside one of unet and one of unet11, all
    weighing 1: unet1024 holds half the mean. With its fold-3 network left out, the other one
    weighs 2, so that unet1024 still holds half, as tuning blended it: the rows are those of
    the naive loop over the three kept networks with unet1024 at 2."""
    paths = DatasetPaths(tiny_dataset.data_dir)
    names = pd.read_csv(paths.sample_submission_path)["img"].tolist()
    images = [paths.image_path("test", name) for name in names]
    kept = [load_member(path, torch.device("cpu")) for path in weights_paths[:3]]
    assert [(m.spec.name, m.fold) for m in kept] == [("unet", 0), ("unet1024", 1), ("unet11", 2)]
    auto = mixed_precision_dtype(torch.device("cpu"))
    tta = TTASpec(hflip=True)
    first = Ensemble(kept, tta, torch.device("cpu"), auto, {"unet1024": 2.0}).probabilities(
        [read_image(images[0])]
    )
    threshold = float(np.median(first[0]))
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"threshold": threshold, "left_out": ["unet1024/fold3"]}))
    shard = ShardSpec(1, 1, batch_size=8, tta=tta, gpu=0)
    predict_shard(shard, tiny_dataset.data_dir, weights_paths, thresholds, tmp_path / "fast.csv")
    naive_predict(images, kept, tta, {"unet1024": 2.0}, threshold, tmp_path / "naive.csv", autocast=auto)
    fast, naive = (pd.read_csv(tmp_path / name, dtype=str).fillna("") for name in ("fast.csv", "naive.csv"))
    assert fast.equals(naive) and fast["rle_mask"].nunique() > 16


def test_kept_weights_worked_out_by_hand() -> None:
    # a: 3 networks loaded, 2 kept, weight 0.5 -> 0.75 each (1.5 in all, as 3 x 0.5 would be);
    # b: 3 of 3 kept, no weight given -> 1 each; c: none kept -> left out of the mean
    weights = kept_weights({"a": 0.5, "c": 2.0}, {"a": 3, "b": 3, "c": 3}, {"a": 2, "b": 3})
    assert weights == {"a": 0.75, "b": 1.0}
