# The data step: one source per run, the same competition layout out of each.
# kaggle: download (one job per archive, skipped when present) -> import_kaggle (safe unzip).

from carvana.competition import (
    COMPETITION_SIZE,
    COMPETITION_TEST_IMAGES,
    COMPETITION_TRAIN_IMAGES,
)
from carvana.data.download import archive_names
from carvana.layout import scaled_size

ARCHIVE_DIR = str(
    Path(config["kaggle"]["archive_dir"])
)  # the kaggle source's downloads


def full_competition():
    """Whether the real data must have the competition's exact counts and size."""
    dataset = config["dataset"]
    return dataset != "synthetic" and config[dataset]["full_competition"]


def image_size():
    """(height, width) every image must have, or None to read it off a hand-made subset."""
    if config["dataset"] == "synthetic":
        return scaled_size(config["synthetic"]["image_scale"])
    return COMPETITION_SIZE if full_competition() else None


def kaggle_archives():
    """The archives the download rule fetches, one job each."""
    return [f"{ARCHIVE_DIR}/{name}" for name in archive_names(config["kaggle"]["hq"])]


def synthesize_args():
    synthetic = config["synthetic"]
    low, high = synthetic["jpeg_quality"]
    return (
        f"--train-cars {synthetic['train_cars']} --test-cars {synthetic['test_cars']} "
        f"--image-scale {synthetic['image_scale']} --seed {synthetic['seed']} "
        f"--jpeg-quality {low} {high}"
    )


def import_local_args():
    local = config["local"]
    return f"--source-dir {local['source_dir']!r}" + (" --hq" if local["hq"] else "")


def import_kaggle_args():
    return " --hq" if config["kaggle"]["hq"] else ""


def validate_data_args():
    size = image_size()
    args = f"--image-size {size[0]} {size[1]}" if size else ""
    if full_competition():
        args += f" --train-images {COMPETITION_TRAIN_IMAGES} --test-images {COMPETITION_TEST_IMAGES}"
    if config["validate_data"]["decode_test"]:
        args += " --decode-test"
    return args


if config["dataset"] == "synthetic":

    rule synthesize:
        output:
            **dataset_files(),
            truth=TRUTH,
        log:
            "results/logs/synthesize.log",
        benchmark:
            "results/benchmarks/synthesize.tsv"
        conda:
            ENV
        threads: 2
        params:
            code=stage_code("synthesize"),
            data_dir=folder_of("train_masks_csv", io="output"),
            args=synthesize_args(),
        shell:
            "carvana logged --log {log} -- carvana synthesize --data-dir {params.data_dir} --truth-path {output.truth} "
            "{params.args} --workers {threads}"

elif config["dataset"] == "local":

    rule import_local:
        output:
            **dataset_files(),
        log:
            "results/logs/import_local.log",
        benchmark:
            "results/benchmarks/import_local.tsv"
        conda:
            ENV
        params:
            code=stage_code("import-files"),
            data_dir=folder_of("train_masks_csv", io="output"),
            args=import_local_args(),
        shell:
            "carvana logged --log {log} -- carvana import-files --data-dir {params.data_dir} {params.args}"

elif config["dataset"] == "kaggle":

    rule download:
        output:
            # update: a rerun must not delete an archive of GBs; the download keeps a whole one
            archive=update(f"{ARCHIVE_DIR}/{{archive}}"),
        log:
            "results/logs/download/{archive}.log",
        benchmark:
            "results/benchmarks/download/{archive}.tsv"
        # local: on a cluster it runs where Snakemake runs, which reaches Kaggle
        localrule: True
        conda:
            ENV
        params:
            archive_dir=folder_of("archive", io="output"),
            competition=config["kaggle"]["competition"],
        shell:
            "carvana logged --log {log} -- carvana download --competition {params.competition} --file {wildcards.archive} "
            "--archive-dir {params.archive_dir}"

    rule import_kaggle:
        input:
            archives=kaggle_archives(),
        output:
            **dataset_files(),
        log:
            "results/logs/import_kaggle.log",
        benchmark:
            "results/benchmarks/import_kaggle.tsv"
        conda:
            ENV
        params:
            code=stage_code("import-files"),
            data_dir=folder_of("train_masks_csv", io="output"),
            archive_dir=folder_of("archives"),
            args=import_kaggle_args(),
        shell:
            "carvana logged --log {log} -- carvana import-files --source-dir {params.archive_dir} --data-dir {params.data_dir}"
            "{params.args}"


rule validate_data:
    input:
        **dataset_inputs(),
    output:
        report=DATA_REPORT,
    log:
        "results/logs/validate_data.log",
    benchmark:
        "results/benchmarks/validate_data.tsv"
    conda:
        ENV
    threads: 2
    params:
        code=stage_code("validate-data"),
        data_dir=folder_of("train_masks_csv"),
        args=validate_data_args(),
    shell:
        "carvana logged --log {log} -- carvana validate-data --data-dir {params.data_dir} --report-path {output.report} "
        "{params.args} --workers {threads}"
