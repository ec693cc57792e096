# The data step: one source per run, the same competition layout out of each.

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
            data_dir=data_dir_of_output,
            args=synthesize_args(),
        shell:
            "carvana synthesize --data-dir {params.data_dir} --truth-path {output.truth} "
            "{params.args} --workers {threads} 2>&1 | tee {log}"

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
            data_dir=data_dir_of_output,
            args=import_local_args(),
        shell:
            "carvana import-local --data-dir {params.data_dir} {params.args} 2>&1 | tee {log}"


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
        data_dir=data_dir_of_input,
        args=validate_data_args(),
    shell:
        "carvana validate-data --data-dir {params.data_dir} --report-path {output.report} "
        "{params.args} --workers {threads} 2>&1 | tee {log}"
