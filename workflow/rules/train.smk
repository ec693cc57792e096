# Training: every configured model on every fold, each job resumable from its last checkpoint,
# on GPUs it leases for itself (carvana with-gpus). In a pseudo-labelling round, with its fold's
# pseudo labels too, from the round before's weights where pseudo.start says so.


def train_priority(wildcards):
    """The longest training jobs start first, so that the short ones fill in beside them: a job's
    work is about its epochs x its training input's pixels x its width."""
    spec = MODELS[wildcards.model]
    height, width = spec.tile_size or spec.input_size
    return max(1, round(spec.epochs * height * width * spec.width / 1000))


rule train:
    input:
        folds=FOLDS,
        train_masks_csv=dataset_inputs()["train_masks_csv"],
        train=dataset_inputs()["train"],
        train_masks=dataset_inputs()["train_masks"],
        pretrained=pretrained_inputs,
        pseudo=round_labels,
        start=round_start,
    output:
        weights=f"{RUN_DIR}/weights.pt",
        metrics=f"{RUN_DIR}/metrics.csv",
    log:
        "{results}/logs/train/{model}_fold{fold}.log",
    benchmark:
        "{results}/benchmarks/train/{model}_fold{fold}.tsv"
    priority: train_priority
    conda:
        ENV
    threads: model_threads
    resources:
        gpu=model_gpus,
    params:
        code=train_code,
        gpus=model_gpus,
        data_dir=data_dir_of_input,
        run_dir=RUN_DIR,
        spec=model_json,
        pseudo=round_train_args,
    shell:
        "carvana logged --log {log} -- carvana with-gpus --gpus {resources.gpu} --asked {params.gpus} -- "
        "carvana train --model {wildcards.model} --fold {wildcards.fold} --model-json {params.spec:q} "
        "--data-dir {params.data_dir} --folds-path {input.folds} --run-dir {params.run_dir} --code {params.code} {params.pseudo}"
