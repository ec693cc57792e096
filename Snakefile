# The Carvana Image Masking Challenge pipeline: a table of contents.
# data (synthesize | import_local | download -> import_kaggle) -> validate_data -> make_folds
# -> pretrained_* (ImageNet weights, when a model asks) -> train {model} x {fold} -> oof {model} x {fold}
# -> tune_threshold -> predict {shard} -> submission -> validate_submission, score; report_figures
# pseudo.rounds > 0: per round r, pseudo_labels {fold} (round r-1's fold-k networks) -> train ...
# -> score again under results/pseudo/round<r>/; pseudo_rounds compares the rounds


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/folds.smk"
include: "workflow/rules/pretrained.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/oof.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/submit.smk"
include: "workflow/rules/pseudo.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        DATA_REPORT,
        FOLDS,
        every_round("weights"),
        every_round("oof_dice"),
        REPORT_PAGES,
        final_outputs(),
