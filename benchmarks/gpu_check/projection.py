"""From the measured rates to the whole competition: its hours on N devices, its FLOPs and their
hours at the device's peak, and each rate's share of that peak. Arithmetic only: nothing here
runs a network."""

from __future__ import annotations

import heapq
import math
from typing import Any

from carvana.competition import COMPETITION_TEST_IMAGES, COMPETITION_TRAIN_IMAGES


def projection(config: dict[str, Any], figures: dict[str, Any], devices: list[int]) -> dict[str, Any]:
    """Hours of the whole competition from the measured rates, each stage at its faster setting:
    every model on every fold for its epochs (training, validation, OOF maps), the jobs spread
    over N devices longest first (an ideal schedule: Snakemake's order may be worse), then the
    test set's shards over the same devices. Beside them
    the FLOPs of it all and the hours they take at the device's peak: the limit."""
    folds = int(config.get("folds", {}).get("n_folds", 5))
    held_out = COMPETITION_TRAIN_IMAGES / folds
    trained_on = COMPETITION_TRAIN_IMAGES - held_out
    jobs: dict[str, float] = {}
    setting: dict[str, str] = {}
    total_flops = 0.0
    for name, measured in figures["training"].items():
        best = max(
            (key for key in ("eager", "compiled") if key in measured),
            key=lambda k: measured[k]["images_per_s"],
        )
        train_rate, validate_rate = measured[best]["images_per_s"], measured["validate_images_per_s"]
        epochs = int(measured["epochs"])
        per_epoch = trained_on / train_rate + held_out / validate_rate
        jobs[name] = epochs * per_epoch + held_out / validate_rate  # + the OOF maps
        setting[name] = best
        train, validate = measured["train_flops_per_image"], measured["validate_flops_per_image"]
        total_flops += folds * (epochs * (trained_on * train + held_out * validate) + held_out * validate)
    shards = int(config.get("predict", {}).get("shards", 1))
    test_images = COMPETITION_TEST_IMAGES

    def predicting(run: dict[str, Any]) -> float:
        """Seconds of every shard of the test set on one device with ``run``'s setting: the
        measured ensemble has one network per model, the competition's one per fold, and each
        shard loads (and compiles) them all again."""
        network = 1 / run["forward_images_per_s"]
        per_image = folds * network + max(0.0, 1 / run["images_per_s"] - network)
        once = run["shard_seconds"] + folds * run["first_batch_seconds"]
        return float(test_images * per_image + shards * once)

    fastest = min(figures["prediction"]["runs"], key=predicting)
    predict_seconds = predicting(fastest)
    total_flops += test_images * folds * figures["prediction"]["flops_per_image"]
    hours: dict[str, float] = {}
    for count in sorted(set(devices)):
        training_s = makespan([seconds for seconds in jobs.values() for _ in range(folds)], count)
        predicting_s = math.ceil(shards / count) * predict_seconds / shards
        hours[str(count)] = (training_s + predicting_s) / 3600
    return {
        "folds": folds,
        "train_job_hours": {name: seconds / 3600 for name, seconds in jobs.items()},
        "train_setting": setting,
        "predict_hours_one_device": predict_seconds / 3600,
        "predict_setting": {"compiled": fastest["compiled"], "workers": fastest["workers"]},
        "test_images": test_images,
        "hours_by_devices": hours,
        "flops": total_flops,
        "hours_at_peak": total_flops / (figures["peak"]["tflops"] * 1e12) / 3600,
    }


def makespan(durations: list[float], devices: int) -> float:
    """Wall time of independent jobs on ``devices`` devices, each job to the first free device,
    longest job first."""
    free = [0.0] * devices
    for duration in sorted(durations, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free)


def share(figures: dict[str, Any]) -> None:
    """Adds the achieved TFLOP/s and their share of the peak beside every rate."""
    peak_tflops = figures["peak"]["tflops"]

    def achieved(flops_per_image: float, images_per_s: float) -> dict[str, float]:
        tflops = flops_per_image * images_per_s / 1e12
        return {"tflops": tflops, "peak_share": tflops / peak_tflops}

    for measured in figures["training"].values():
        train = measured["train_flops_per_image"]
        for key in ("eager", "compiled"):
            if key in measured:
                rates = measured[key]
                rates["achieved"] = achieved(train, rates["images_per_s"])
                rates["network_achieved"] = achieved(train, rates["network_images_per_s"])
        measured["validate_achieved"] = achieved(
            measured["validate_flops_per_image"], measured["validate_images_per_s"]
        )
    predicted = figures["prediction"]
    for run in predicted["runs"]:
        run["achieved"] = achieved(predicted["flops_per_image"], run["images_per_s"])
        run["forward_achieved"] = achieved(predicted["flops_per_image"], run["forward_images_per_s"])
