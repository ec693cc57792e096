# Out-of-fold tuning: the ensemble's weights (given, or auto) and threshold, chosen on every
# training image's OOF maps; the networks that learnt nothing flagged; the ablation table.


def tune_args():
    grid = config["tune"]["thresholds"]
    flag = config["tune"]["flag"]
    ensemble = config["ensemble"]
    models = " ".join(f"--model {name}" for name in MODELS)
    thresholds = f"--thresholds {grid['start']} {grid['stop']} {grid['step']}"
    if ensemble["weights"] == "auto":
        weights = "--auto-weights"
    else:
        weights = " ".join(
            f"--weight {name}={weight}" for name, weight in ensemble["weights"].items()
        )
    # the ablation searches the weights either way
    weights += f" --weight-step {ensemble['weight_step']}"
    flags = f"--min-dice {flag['min_dice']} --max-gap {flag['max_gap']}"
    return " ".join(filter(None, [models, thresholds, weights, flags]))


rule tune_threshold:
    input:
        folds=FOLDS,
        train_masks_csv=dataset_inputs()["train_masks_csv"],
        oof=trained("oof"),
        plain=trained("oof_plain"),
    output:
        thresholds=THRESHOLDS,
        scores=report(
            OOF_SCORES,
            caption="../report/oof_scores.rst",
            category="Out-of-fold",
        ),
        images=OOF_IMAGES,
        ablation=report(
            ABLATION,
            caption="../report/ablation.rst",
            category="Out-of-fold",
        ),
        plot=report(
            "{results}/tuning/dice_vs_threshold.png",
            caption="../report/dice_vs_threshold.rst",
            category="Out-of-fold",
        ),
    log:
        "{results}/logs/tune_threshold.log",
    benchmark:
        "{results}/benchmarks/tune_threshold.tsv"
    conda:
        ENV
    threads: config["tune"]["threads"]
    params:
        code=stage_code("tune-threshold"),
        data_dir=folder_of("train_masks_csv"),
        models_dir=folder_of("oof", up=2),
        out_dir=folder_of("thresholds", io="output"),
        args=tune_args(),
    shell:
        "carvana logged --log {log} -- carvana tune-threshold --data-dir {params.data_dir} --folds-path {input.folds} "
        "--models-dir {params.models_dir} --out-dir {params.out_dir} {params.args} --threads {threads}"
