# The k-fold split by car, made once the data has passed its check.


def make_folds_args():
    folds = config["folds"]
    return f"--n-folds {folds['n_folds']} --seed {folds['seed']} --stratify {folds['stratify']}"


rule make_folds:
    input:
        train_masks_csv=dataset_inputs()["train_masks_csv"],
        metadata=dataset_inputs()["metadata"],
        report=DATA_REPORT,
    output:
        folds=FOLDS,
    log:
        "results/logs/make_folds.log",
    benchmark:
        "results/benchmarks/make_folds.tsv"
    conda:
        ENV
    params:
        code=stage_code("make-folds"),
        data_dir=folder_of("train_masks_csv"),
        args=make_folds_args(),
    shell:
        "carvana logged --log {log} -- carvana make-folds --data-dir {params.data_dir} --folds-path {output.folds} "
        "{params.args}"
