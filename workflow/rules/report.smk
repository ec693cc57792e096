# Figures for the HTML report (snakemake --report results/report.html), made with every run.


rule report_figures:
    input:
        metrics=trained("metrics", round_dir(0)),
        oof=trained("oof", round_dir(0)),
        thresholds=in_round(THRESHOLDS, 0),
        oof_scores=in_round(OOF_SCORES, 0),
        oof_images=in_round(OOF_IMAGES, 0),
        ablation=in_round(ABLATION, 0),
        train_masks_csv=dataset_inputs()["train_masks_csv"],
        train=dataset_inputs()["train"],
        score=offline_score(),
    output:
        summary=report(
            "results/report/summary.html",
            caption="../report/summary.rst",
            category="Summary",
        ),
        curves=report(
            "results/report/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
        ),
        gallery=report(
            directory("results/report/worst_oof"),
            patterns=["{name}.png"],
            caption="../report/worst_oof.rst",
            category="Out-of-fold",
        ),
    log:
        "results/logs/report_figures.log",
    benchmark:
        "results/benchmarks/report_figures.tsv"
    conda:
        ENV
    params:
        code=stage_code("report-figures"),
        data_dir=data_dir_of_input,
        models_dir=models_dir_of_input,
        tuning_dir=folder_of_input_thresholds,
        out_dir=folder_of_curves,
        config=config_json(),
        args=report_figures_args,
    shell:
        "carvana logged --log {log} -- carvana report-figures --data-dir {params.data_dir} --models-dir {params.models_dir} "
        "--tuning-dir {params.tuning_dir} --out-dir {params.out_dir} "
        "--metrics-path {input.metrics} "
        "--config-json {params.config:q} {params.args}"
