# ImageNet weights that models with `pretrained: true` start from: one local job per file, before
# the training jobs that read it. Each file goes into its library's own cache (torchvision's, the
# Hugging Face hub's) through the library's download and hash check; on a cluster the job runs
# where Snakemake runs, which reaches the internet. A file already in the cache is not fetched: the
# job runs only for a missing file (or --forcerun, which fetches it again). The mirror settings
# reach the shell through WEIGHT_SOURCE, not params: the file is the same from any mirror, so a
# new mirror fetches nothing. The training jobs check the file's hash before they load it.

import shlex

from carvana.models.pretrained import files_by_key

# The ImageNet weight files the models start from, by key (vgg11, smp-<encoder>): one fetch each.
PRETRAINED = files_by_key(list(MODELS.values()))


def weight_source_args():
    """The mirror settings of pretrained_weights, as fetch-weights flags."""
    given = config["pretrained_weights"]
    flags = {"--base-url": given["base_url"], "--hf-endpoint": given["hf_endpoint"]}
    return " ".join(
        f"{flag} {shlex.quote(value)}" for flag, value in flags.items() if value
    )


# In the fetch's shell text, where no rerun trigger sees it: the file is the same from any mirror.
WEIGHT_SOURCE = weight_source_args()

for key, weights in PRETRAINED.items():

    rule:
        name:
            f"pretrained_{key.replace('-', '_')}"
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
