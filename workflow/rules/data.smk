# The data step: one source per run, the same competition layout out of each.
# kaggle: download (one job per archive, skipped when present) -> import_kaggle (safe unzip).

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
            data_dir=data_dir_of_output,
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
            data_dir=data_dir_of_output,
            args=import_local_args(),
        shell:
            "carvana logged --log {log} -- carvana import-files --data-dir {params.data_dir} {params.args}"

elif config["dataset"] == "kaggle":

    rule download:
        output:
            # update: a rerun must not delete an archive of GBs; the download keeps a whole one
            archive=update(str(ARCHIVE_DIR / "{archive}")),
        log:
            "results/logs/download/{archive}.log",
        benchmark:
            "results/benchmarks/download/{archive}.tsv"
        # local: on a cluster it runs where Snakemake runs, which reaches Kaggle
        localrule: True
        conda:
            ENV
        params:
            archive_dir=archive_dir_of_output,
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
            data_dir=data_dir_of_output,
            archive_dir=archive_dir_of_input,
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
        data_dir=data_dir_of_input,
        args=validate_data_args(),
    shell:
        "carvana logged --log {log} -- carvana validate-data --data-dir {params.data_dir} --report-path {output.report} "
        "{params.args} --workers {threads}"
