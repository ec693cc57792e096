# TTA ensemble prediction: the test set in shards, each a GPU job streaming its images in batches.


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
        gpu=predict_gpus(),
    params:
        code=stage_code("predict"),
        gpus=predict_gpus(),
        data_dir=data_dir_of_sample_submission,
        shard=shard_args,
        args=predict_args(),
    shell:
        "carvana logged --log {log} -- carvana with-gpus --gpus {resources.gpu} --asked {params.gpus} -- "
        "carvana predict {params.shard} --data-dir {params.data_dir} --weights {input.weights} "
        "--thresholds-path {input.thresholds} --out-path {output.shard} {params.args} --gpu {resources.gpu} --threads {threads} "
