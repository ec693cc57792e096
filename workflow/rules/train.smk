# Training: every configured model on every fold, each job resumable from its last checkpoint,
# on GPUs it leases for itself (carvana with-gpus). In a pseudo-labelling round, with its fold's
# pseudo labels too, from the round before's weights where pseudo.start says so.


def round_of(results):
    """The round whose folder is ``results`` (the wildcard)."""
    return 0 if results == "results" else int(results.rsplit("round", 1)[1])


def model_json(wildcards):
    """This model's settings only, as JSON: a change to one model reruns that model's jobs alone."""
    return MODELS[wildcards.model].to_json()


def model_threads(wildcards):
    return MODELS[wildcards.model].threads


def model_gpus(wildcards):
    return MODELS[wildcards.model].gpu


def pretrained_inputs(wildcards):
    """The weight files this model starts from, as they lie in the libraries' caches. Their
    content is fixed by their hash, so only their presence counts (ancient): a file fetched again
    retrains nothing."""
    spec = MODELS[wildcards.model]
    return [ancient(str(file.path)) for file in files_by_key([spec]).values()]


def round_labels(wildcards):
    """A training job's pseudo labels table: none in round 0, its fold's of its round otherwise
    (the table lists the masks' files in the fold's shards)."""
    number = round_of(wildcards.results)
    if number == 0:
        return []
    return expand(PSEUDO_TABLE, round=number, fold=wildcards.fold)


def round_start(wildcards):
    """The weights a round's training job starts from: the same model and fold of the round
    before (pseudo.start previous), or none."""
    number = round_of(wildcards.results)
    if number == 0 or config["pseudo"]["start"] != "previous":
        return []
    return expand(
        f"{RUN_DIR}/weights.pt",
        results=round_dir(number - 1),
        model=wildcards.model,
        fold=wildcards.fold,
    )


def round_train_args(wildcards):
    """The training job's pseudo-labelling flags: none in round 0, whatever pseudo says. Of the
    wildcards alone: Snakemake does not compare params made from a job's input, and a change of
    these must rerun the round."""
    labels = round_labels(wildcards)
    if not labels:
        return ""
    pseudo = config["pseudo"]
    start = "".join(f" --init-weights {path}" for path in round_start(wildcards))
    return (
        f"--pseudo-labels {Path(labels[0]).parent} --pseudo-share {pseudo['share']} "
        f"--pseudo-select {pseudo['select']} --pseudo-ratio {pseudo['ratio']}{start}"
    )


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
        code=model_stage_code("train"),
        gpus=model_gpus,
        data_dir=folder_of("train_masks_csv"),
        run_dir=folder_of("weights", io="output"),
        spec=model_json,
        pseudo=round_train_args,
    shell:
        "carvana logged --log {log} -- carvana with-gpus --gpus {resources.gpu} --asked {params.gpus} -- "
        "carvana train --model {wildcards.model} --fold {wildcards.fold} --model-json {params.spec:q} "
        "--data-dir {params.data_dir} --folds-path {input.folds} --run-dir {params.run_dir} --code {params.code} {params.pseudo}"
