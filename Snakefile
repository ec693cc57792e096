# The Carvana Image Masking Challenge pipeline: a table of contents.
# data (synthesize | import_local | download -> import_kaggle) -> validate_data -> make_folds
# -> pretrained_* (ImageNet weights, when a model asks) -> train {model} x {fold} -> oof {model} x {fold}
# -> tune_threshold -> predict {shard} -> submission -> validate_submission, score; report_figures


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
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        DATA_REPORT,
        FOLDS,
        trained("weights"),
        trained("oof_dice"),
        THRESHOLDS,
        REPORT_PAGES,
        final_outputs(),
