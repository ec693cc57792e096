# Out-of-fold maps: each training job's held-out images through the prediction stage's own path,
# with the configured TTA and without it. Tuning fits the weights and threshold to these, so a
# TTA change reruns them, tuning and prediction, never training.


rule oof:
    input:
        weights=f"{RUN_DIR}/weights.pt",
        folds=FOLDS,
        train_masks_csv=dataset_inputs()["train_masks_csv"],
        train=dataset_inputs()["train"],
        train_masks=dataset_inputs()["train_masks"],
    output:
        oof=directory(f"{RUN_DIR}/oof"),
        plain=directory(f"{RUN_DIR}/oof_plain"),
        dice=f"{RUN_DIR}/oof_dice.csv",
    log:
        "{results}/logs/oof/{model}_fold{fold}.log",
    benchmark:
        "{results}/benchmarks/oof/{model}_fold{fold}.tsv"
    conda:
        ENV
    threads: config["predict"]["threads"] + config["predict"]["workers"]
    resources:
        gpu=PREDICT_GPUS,
    params:
        code=model_stage_code("oof"),
        gpus=PREDICT_GPUS,
        data_dir=folder_of("train_masks_csv"),
        run_dir=folder_of("weights"),
        tta=tta_args(),
        batch_size=config["predict"]["batch_size"],
        workers=config["predict"]["workers"],
    shell:
        "carvana logged --log {log} -- carvana with-gpus --gpus {resources.gpu} --asked {params.gpus} -- "
        "carvana oof --data-dir {params.data_dir} --folds-path {input.folds} --run-dir {params.run_dir} "
        "{params.tta} --batch-size {params.batch_size} --workers {params.workers} --gpu {resources.gpu} --threads {threads}"
