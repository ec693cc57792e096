# Pseudo-labelling rounds (pseudo.rounds > 0): round r's labels of the test images, for each fold
# from round r-1's fold-k networks alone, in as many shards as prediction (each a folder made
# whole, so a killed round redoes only its unfinished shards), gathered into the fold's table;
# round r's training, OOF maps, tuning, prediction and submission are the plain rules' under
# results/pseudo/round<r>/.


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
        gpu=predict_gpus(),
    params:
        code=stage_code("pseudo-labels"),
        gpus=predict_gpus(),
        data_dir=data_dir_of_sample_submission,
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
        data_dir=data_dir_of_sample_submission,
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
        rounds=round_dirs_of_input,
    shell:
        "carvana logged --log {log} -- carvana pseudo-rounds --round-dir {params.rounds} --out-path {output.table}"
