# Figures for the HTML report (snakemake --report results/report.html), made with every run.

import json


def offline_score():
    """The offline score, shown in the report; the real competition has none."""
    return in_round(SCORE, 0) if config["dataset"] == "synthetic" else []


def config_json():
    """The run's config (all config files merged), shown in the report: round 0's, so without
    the pseudo-labelling rounds' settings, which do not touch it."""
    return json.dumps(
        {k: v for k, v in config.items() if k != "pseudo"}, sort_keys=True
    )


def report_figures_args(wildcards, input):
    score = f" --score-path {input.score}" if input.score else ""
    return f"--worst {config['report']['worst_images']}{score}"


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
        data_dir=folder_of("train_masks_csv"),
        models_dir=folder_of("oof", up=2),
        tuning_dir=folder_of("thresholds"),
        out_dir=folder_of("curves", io="output"),
        config=config_json(),
        args=report_figures_args,
    shell:
        "carvana logged --log {log} -- carvana report-figures --data-dir {params.data_dir} --models-dir {params.models_dir} "
        "--tuning-dir {params.tuning_dir} --out-dir {params.out_dir} "
        "--metrics-path {input.metrics} "
        "--config-json {params.config:q} {params.args}"
