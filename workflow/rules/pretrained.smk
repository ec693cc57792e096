# ImageNet weights that models with `pretrained: true` start from: one local job per file, before
# the training jobs that read it. Each file goes into its library's own cache (torchvision's, the
# Hugging Face hub's), through the library's download and hash check; on a cluster it runs where
# the network is. update(): Snakemake never deletes a cached file before a rerun, and a rerun (a new
# mirror) keeps a file whose hash checks out.

for key, weights in PRETRAINED.items():

    rule:
        name:
            pretrained_rule(key)
        output:
            weights=update(str(weights.path)),
        log:
            f"results/logs/pretrained/{key}.log",
        benchmark:
            f"results/benchmarks/pretrained/{key}.tsv"
        localrule: True
        conda:
            ENV
        params:
            key=key,
            source=weight_source_args(),
        shell:
            "carvana fetch-weights --weights {params.key} {params.source} 2>&1 | tee {log}"
