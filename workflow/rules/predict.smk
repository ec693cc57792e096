# TTA ensemble prediction: the test set in shards, each a GPU job streaming its images in batches.


def predict_args():
    predict = config["predict"]
    common = f"--batch-size {predict['batch_size']} {tta_args()}"
    compiled = "--compile" if predict["compile"] else ""
    workers = f"--workers {predict['workers']}" if predict["workers"] else ""
    return " ".join(filter(None, [common, compiled, workers]))


scattergather:
    predict=config["predict"]["shards"],


rule predict:
    input:
        weights=trained("weights"),
        thresholds=THRESHOLDS,
        sample_submission=dataset_inputs()["sample_submission"],
        test=dataset_inputs()["test"],
    output:
        shard="{results}/predict/shard_{scatteritem}.csv",
    log:
        "{results}/logs/predict/shard_{scatteritem}.log",
    benchmark:
        "{results}/benchmarks/predict/shard_{scatteritem}.tsv"
    conda:
        ENV
    threads: config["predict"]["threads"] + config["predict"]["workers"]
    resources:
        gpu=PREDICT_GPUS,
    params:
        code=stage_code("predict"),
        gpus=PREDICT_GPUS,
        data_dir=folder_of("sample_submission"),
        shard=shard_args,
        args=predict_args(),
    shell:
        "carvana logged --log {log} -- carvana with-gpus --gpus {resources.gpu} --asked {params.gpus} -- "
        "carvana predict {params.shard} --data-dir {params.data_dir} --weights {input.weights} "
        "--thresholds-path {input.thresholds} --out-path {output.shard} {params.args} --gpu {resources.gpu} --threads {threads} "
