# Out-of-fold tuning: the ensemble's weights (given, or auto) and threshold, chosen on every
# training image's OOF maps; the networks that learnt nothing flagged; the ablation table.


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
        data_dir=data_dir_of_input,
        models_dir=models_dir_of_input,
        out_dir=folder_of_thresholds,
        args=tune_args(),
    shell:
        "carvana logged --log {log} -- carvana tune-threshold --data-dir {params.data_dir} --folds-path {input.folds} "
        "--models-dir {params.models_dir} --out-dir {params.out_dir} {params.args} --threads {threads}"
