"""The table gpu_check prints from its figures (the JSON's keys, as measured and projected)."""

from __future__ import annotations

from typing import Any


def print_table(figures: dict[str, Any]) -> None:
    height, width = figures["image_size"]
    peak_ = figures["peak"]
    print(f"\n{figures['machine']}; {width}x{height} images (scale {figures['image_scale']})")
    print(f"peak {peak_['tflops']:.1f} TFLOP/s: {peak_['source']}", end="")
    if peak_["tflops"] != peak_["matmul_tflops"]:
        print(f" (a dense matrix product here: {peak_['matmul_tflops']:.1f})", end="")
    print("\n")
    rows = [("", "images/s", "TFLOP/s", "of peak", "")]
    for name, t in figures["training"].items():
        size = "x".join(map(str, t["input_size"]))
        for key in ("eager", "compiled"):
            if key in t:
                r = t[key]
                rows.append(
                    (
                        f"train {name} {size} batch {t['batch_size']} {t['precision']} {key}",
                        f"{r['images_per_s']:.2f}",
                        f"{r['achieved']['tflops']:.2f}",
                        f"{r['achieved']['peak_share']:.1%}",
                        f"network alone {r['network_images_per_s']:.2f}/s",
                    )
                )
        v = t["validate_achieved"]
        loader = f"its loader ({t['workers']} processes) {t['loader_images_per_s']:.2f}/s"
        rows.append(
            (
                "  validate",
                f"{t['validate_images_per_s']:.2f}",
                f"{v['tflops']:.2f}",
                f"{v['peak_share']:.1%}",
                loader,
            )
        )
        how = "tried" if t["largest_batch_tried"] else "estimated"
        how += ", 16x the batch at most" if t["largest_batch_capped"] else ""
        memory = f"{t['peak_memory_mib']:.0f} MiB at batch {t['batch_size']}"
        rows.append(("  memory", memory, "", "", f"largest batch {t['largest_batch']} ({how})"))
    p = figures["prediction"]
    for run in p["runs"]:
        label = f"predict, {run['workers']} loader processes, {'compiled' if run['compiled'] else 'eager'}"
        alone = f"forward alone {run['forward_images_per_s']:.2f}/s, {run['shard_seconds']:.1f} s a shard"
        rows.append(
            (
                label,
                f"{run['images_per_s']:.2f}",
                f"{run['achieved']['tflops']:.2f}",
                f"{run['achieved']['peak_share']:.1%}",
                f"{alone}, path / forward {run['path_over_forward']:.2f}x",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"(prediction: {p['networks']} networks x {p['views']} views, batch {p['batch_size']})")
    j = figures["projection"]
    at = "" if figures["image_scale"] == 1 else f" at scale {figures['image_scale']}, not the real cost"
    print(f"\nthe whole competition ({j['folds']} folds, {j['test_images']:,} test images), projected{at}:")
    for name, hours in j["train_job_hours"].items():
        print(f"  one {name} training job: {hours:.2f} h ({j['train_setting'][name]})")
    setting = j["predict_setting"]
    how = f"{'compiled' if setting['compiled'] else 'eager'}, {setting['workers']} loader processes"
    print(f"  prediction on one device: {j['predict_hours_one_device']:.2f} h ({how})")
    for count, hours in j["hours_by_devices"].items():
        print(f"  in all on {count} such device(s) (--resources gpu={count}): {hours:.1f} h")
    print(f"  the limit: {j['flops']:.2e} FLOP, {j['hours_at_peak']:.1f} h on one device at its peak")
    stages = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in figures["stage_seconds"].items())
    print(f"measured in {figures['seconds']:.0f} s: {stages}")
