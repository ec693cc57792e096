# Pseudo-labelling rounds (pseudo.rounds > 0): round r's labels of the test images, for each fold
# from round r-1's fold-k networks alone, in as many shards as prediction (each a folder made
# whole, so a killed round redoes only its unfinished shards), gathered into the fold's table;
# round r's training, OOF maps, tuning, prediction and submission are the plain rules' under
# results/pseudo/round<r>/.


def pseudo_label_networks(wildcards):
    """The networks that label the test images for fold k of round r: round r-1's fold-k
    networks of every model, and no other fold's, which saw fold k's held-out images."""
    previous = round_dir(int(wildcards.round) - 1)
    return expand(
        f"{RUN_DIR}/weights.pt", results=previous, model=MODELS, fold=wildcards.fold
    )


def pseudo_label_thresholds(wildcards):
    """The round before's tuning: the threshold and weights that its labels are made with."""
    return in_round(THRESHOLDS, int(wildcards.round) - 1)


def pseudo_label_args():
    pseudo, predict = config["pseudo"], config["predict"]
    workers = f" --workers {predict['workers']}" if predict["workers"] else ""
    return f"--band {pseudo['band']} --batch-size {predict['batch_size']} {tta_args()}{workers}"


def round_scores():
    """Each round's offline score (the generated dataset only), for the rounds table."""
    if config["dataset"] != "synthetic":
        return []
    return [in_round(SCORE, r) for r in range(ROUNDS + 1)]


scattergather:
    pseudo_labels=config["predict"]["shards"],


rule pseudo_labels:
    input:
        weights=pseudo_label_networks,
        thresholds=pseudo_label_thresholds,
        sample_submission=dataset_inputs()["sample_submission"],
        test=dataset_inputs()["test"],
    output:
        labels=directory(PSEUDO_SHARD),
    log:
        "results/pseudo/round{round}/logs/pseudo_labels/fold{fold}_shard_{scatteritem}.log",
    benchmark:
        "results/pseudo/round{round}/benchmarks/pseudo_labels/fold{fold}_shard_{scatteritem}.tsv"
    conda:
        ENV
    threads: config["predict"]["threads"] + config["predict"]["workers"]
    resources:
        gpu=PREDICT_GPUS,
    params:
        code=stage_code("pseudo-labels"),
        gpus=PREDICT_GPUS,
        data_dir=folder_of("sample_submission"),
        shard=shard_args,
        args=pseudo_label_args(),
    shell:
        "carvana logged --log {log} -- carvana with-gpus --gpus {resources.gpu} --asked {params.gpus} -- "
        "carvana pseudo-labels --fold {wildcards.fold} {params.shard} --data-dir {params.data_dir} --weights {input.weights} "
        "--thresholds-path {input.thresholds} --out-dir {output.labels} {params.args} --gpu {resources.gpu} --threads {threads}"


rule pseudo_labels_table:
    input:
        shards=gather.pseudo_labels(PSEUDO_SHARD, allow_missing=True),
        sample_submission=dataset_inputs()["sample_submission"],
    output:
        table=PSEUDO_TABLE,
    log:
        "results/pseudo/round{round}/logs/pseudo_labels/fold{fold}_table.log",
    benchmark:
        "results/pseudo/round{round}/benchmarks/pseudo_labels_table/fold{fold}.tsv"
    conda:
        ENV
    params:
        code=stage_code("pseudo-labels-table"),
        data_dir=folder_of("sample_submission"),
    shell:
        "carvana logged --log {log} -- carvana pseudo-labels-table --shard-dir {input.shards} --data-dir {params.data_dir} "
        "--out-path {output.table}"


rule pseudo_rounds:
    input:
        thresholds=[in_round(THRESHOLDS, r) for r in range(ROUNDS + 1)],
        checks=[in_round(SUBMISSION_CHECK, r) for r in range(ROUNDS + 1)],
        scores=round_scores(),
    output:
        table=report(
            ROUNDS_TABLE, caption="../report/pseudo_rounds.rst", category="Score"
        ),
    log:
        "results/pseudo/logs/pseudo_rounds.log",
    benchmark:
        "results/pseudo/benchmarks/pseudo_rounds.tsv"
    conda:
        ENV
    params:
        code=stage_code("pseudo-rounds"),
        rounds=lambda wildcards, input: " ".join(
            str(Path(path).parents[1]) for path in input.thresholds
        ),
    shell:
        "carvana logged --log {log} -- carvana pseudo-rounds --round-dir {params.rounds} --out-path {output.table}"
