# ImageNet weights that models with `pretrained: true` start from: one local job per file, before
# the training jobs that read it. Each file goes into its library's own cache (torchvision's, the
# Hugging Face hub's) through the library's download and hash check; on a cluster the job runs
# where Snakemake runs, which reaches the internet. A file already in the cache is not fetched: the
# job runs only for a missing file (or --forcerun, which fetches it again). The mirror settings
# reach the shell through WEIGHT_SOURCE, not params: the file is the same from any mirror, so a
# new mirror fetches nothing. The training jobs check the file's hash before they load it.

for key, weights in PRETRAINED.items():

    rule:
        name:
            pretrained_rule(key)
        output:
            weights=str(weights.path),
        log:
            f"results/logs/pretrained/{key}.log",
        benchmark:
            f"results/benchmarks/pretrained/{key}.tsv"
        localrule: True
        conda:
            ENV
        params:
            key=key,
        shell:
            "carvana logged --log {log} -- carvana fetch-weights --weights {params.key} {WEIGHT_SOURCE}"
