# The submission: shards gathered in sample_submission order, checked as Kaggle would, scored offline.


def last_round(pattern):
    """``pattern`` in the last round's folder: the submission that submit uploads."""
    return in_round(pattern, ROUNDS)


def submit_args():
    """The run's config files (named in the submission's message), its dataset, and how long to
    wait for Kaggle's score."""
    configs = " ".join(f"--config {path}" for path in workflow.configfiles)
    kaggle = config["kaggle"]
    return (
        f"{configs} --dataset {config['dataset']} --competition {kaggle['competition']} "
        f"--score-wait-s {kaggle['score_wait_s']} --score-poll-s {kaggle['score_poll_s']}"
    )


rule submission:
    input:
        shards=gather.predict(
            "{results}/predict/shard_{scatteritem}.csv", allow_missing=True
        ),
        sample_submission=dataset_inputs()["sample_submission"],
    output:
        submission=SUBMISSION,
    log:
        "{results}/logs/submission.log",
    benchmark:
        "{results}/benchmarks/submission.tsv"
    conda:
        ENV
    params:
        code=stage_code("submission"),
        data_dir=folder_of("sample_submission"),
    shell:
        "carvana logged --log {log} -- carvana submission --shard-path {input.shards} --data-dir {params.data_dir} "
        "--out-path {output.submission}"


rule validate_submission:
    input:
        submission=SUBMISSION,
        sample_submission=dataset_inputs()["sample_submission"],
        test=dataset_inputs()["test"],
    output:
        report=SUBMISSION_CHECK,
    log:
        "{results}/logs/validate_submission.log",
    benchmark:
        "{results}/benchmarks/validate_submission.tsv"
    conda:
        ENV
    params:
        code=stage_code("validate-submission"),
        data_dir=folder_of("sample_submission"),
    shell:
        "carvana logged --log {log} -- carvana validate-submission --submission-path {input.submission} --data-dir {params.data_dir} "
        "--report-path {output.report}"


if config["dataset"] == "synthetic":

    rule score:
        input:
            submission=SUBMISSION,
            truth=TRUTH,
            sample_submission=dataset_inputs()["sample_submission"],
            test=dataset_inputs()["test"],
        output:
            score=report(SCORE, caption="../report/score.rst", category="Score"),
        log:
            "{results}/logs/score.log",
        benchmark:
            "{results}/benchmarks/score.tsv"
        conda:
            ENV
        params:
            code=stage_code("score"),
            data_dir=folder_of("sample_submission"),
        shell:
            "carvana logged --log {log} -- carvana score --submission-path {input.submission} --truth-path {input.truth} "
            "--data-dir {params.data_dir} --score-path {output.score}"


onsuccess:
    if Path(last_round(SCORE)).is_file():
        print(
            f"Offline score (mean Dice against the generated test masks): {Path(last_round(SCORE)).read_text()}"
        )


if config["dataset"] == "synthetic":

    rule submit:
        """The offline dataset is generated: refuse at once, before any other job runs."""
        log:
            "results/logs/submit.log",
        benchmark:
            "results/benchmarks/submit.tsv"
        localrule: True
        conda:
            ENV
        shell:
            "echo 'submit: this run uses the generated offline dataset, which Kaggle cannot score; "
            "submit the real competition: snakemake --cores 1 --configfile competition.yaml submit' "
            "| tee {log} >&2; exit 1"

else:

    rule submit:
        """Upload the checked submission to Kaggle (`snakemake --configfile competition.yaml
        submit`), never part of `all`."""
        input:
            submission=last_round(SUBMISSION),
            check=last_round(SUBMISSION_CHECK),
            thresholds=last_round(THRESHOLDS),
        output:
            receipt=report(
                "results/submission_receipt.json",
                caption="../report/submission_receipt.rst",
                category="Score",
            ),
        log:
            "results/logs/submit.log",
        benchmark:
            "results/benchmarks/submit.tsv"
        # local: on a cluster it runs where Snakemake runs, which reaches Kaggle
        localrule: True
        conda:
            ENV
        params:
            args=submit_args(),
        shell:
            "carvana logged --log {log} -- carvana submit --submission-path {input.submission} --thresholds-path {input.thresholds} "
            "--receipt-path {output.receipt} {params.args}"
