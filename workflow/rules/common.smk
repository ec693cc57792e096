# What every rule shares: the config check, the paths, the pseudo-labelling rounds' folders and
# the code digests. A helper that one rule alone calls lives in that rule's file.

import sys
from pathlib import Path

from snakemake.utils import min_version

from carvana.config import check_config
from carvana.gpus import budget_notes
from carvana.job_shell import shell_prefix
from carvana.models.spec import ARCH_MODULES
from carvana.stage_code import stage_digest

min_version("9.0")

# Every job's shell: strict mode, and this Python's `carvana` first on PATH (unless --sdm conda or
# apptainer gives the job an environment of its own), so `.venv/bin/snakemake` works from any shell.
shell.prefix(
    shell_prefix(
        method.name for method in workflow.deployment_settings.deployment_method
    )
)


# The schema (defaults filled in), the models, the ensemble weights, the threshold grid and the
# fold count, all before any job; every problem in one message.
MODELS = {
    spec.name: spec
    for spec in check_config(
        config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
    )
}


# Said while the workflow is read, so that a dry run says it too: Snakemake silently cuts a job's
# gpu to --resources gpu (set by the workflow profile to this machine's count; none on a cluster),
# and with none at all the network jobs run on the CPU.
GPUS_ASKED = {f"models.{name}.gpu": spec.gpu for name, spec in MODELS.items()}
PREDICT_GPUS = config["predict"]["gpu"]  # each job that runs networks over images
GPUS_ASKED["predict.gpu"] = PREDICT_GPUS
# --resources gpu=N: an int, or a wrapper holding one in .value
GPU_RESOURCE = workflow.global_resources.get("gpu")
GPU_BUDGET = getattr(GPU_RESOURCE, "value", GPU_RESOURCE)
for note in budget_notes(
    GPU_BUDGET if isinstance(GPU_BUDGET, int) else None, GPUS_ASKED
):
    print(note, file=sys.stderr)

ENV = "../../envs/carvana.yaml"
DATA_DIR = str(Path(config["data_dir"]))  # the dataset, in the competition's layout
TRUTH = "results/truth/test_masks.csv"  # true masks of the generated test set, read only to score
DATA_REPORT = "results/data_report.json"
FOLDS = "results/folds.csv"
# A round's stages write under {results}: results/ for round 0, the plain pipeline, and
# results/pseudo/round<r>/ for pseudo-labelling round r (see pseudo.smk).
ROUNDS = config["pseudo"]["rounds"]
MODELS_DIR = "{results}/models"  # every training job's folder, <model>/fold<k>
RUN_DIR = f"{MODELS_DIR}/{{model}}/fold{{fold}}"  # one training job's folder
TUNING_DIR = "{results}/tuning"
THRESHOLDS = f"{TUNING_DIR}/thresholds.json"
OOF_SCORES = f"{TUNING_DIR}/oof_scores.csv"
OOF_IMAGES = f"{TUNING_DIR}/oof_images.csv"  # each training image's OOF Dice
# what each step of the recipe buys, out of fold
ABLATION = f"{TUNING_DIR}/ablation.csv"
# a fold's labels of a round; a shard's masks and their table; the fold's table, with its files
PSEUDO_LABELS = "results/pseudo/round{round}/labels/fold{fold}"
PSEUDO_SHARD = f"{PSEUDO_LABELS}/shard_{{scatteritem}}"
PSEUDO_TABLE = f"{PSEUDO_LABELS}/labels.csv"
ROUNDS_TABLE = "results/pseudo/rounds.csv"  # each round's OOF Dice, score and job time
REPORT_DIR = "results/report"
REPORT_PAGES = [
    f"{REPORT_DIR}/summary.html",
    f"{REPORT_DIR}/training_curves.png",
    f"{REPORT_DIR}/worst_oof",
]
SUBMISSION = "{results}/submission.csv.gz"
SUBMISSION_CHECK = "{results}/submission_check.json"
# the generated dataset only: the real test masks are secret
SCORE = "{results}/score.json"


wildcard_constraints:
    results=r"results(/pseudo/round[1-9]\d*)?",
    round=r"[1-9]\d*",
    model="|".join(MODELS),
    fold=r"\d+",
    scatteritem=r"\d+-of-\d+",


def round_dir(number):
    """Where round ``number``'s stages write: results for round 0, else results/pseudo/round<r>."""
    return "results" if int(number) == 0 else f"results/pseudo/round{int(number)}"


def in_round(pattern, number):
    """``pattern``'s {results} filled in with round ``number``'s folder."""
    return expand(pattern, results=round_dir(number), allow_missing=True)[0]


def trained(name, results="{results}"):
    """One output of every training job (weights, metrics) or of its OOF maps (oof, oof_plain,
    oof_dice), of a round's folder (by default the job's own {results})."""
    suffix = {
        "weights": "weights.pt",
        "metrics": "metrics.csv",
        "oof": "oof",
        "oof_plain": "oof_plain",
        "oof_dice": "oof_dice.csv",
    }[name]
    return expand(
        f"{RUN_DIR}/{suffix}",
        results=results,
        model=MODELS,
        fold=range(config["folds"]["n_folds"]),
        allow_missing=True,
    )


def every_round(name):
    """``trained(name)`` of every round, 0 to pseudo.rounds."""
    return [path for r in range(ROUNDS + 1) for path in trained(name, round_dir(r))]


def final_outputs():
    """What `all` asks for beyond training: each round's thresholds, submission, its check and
    the offline score, and with pseudo-labelling rounds the table that compares them."""
    patterns = [THRESHOLDS, SUBMISSION, SUBMISSION_CHECK]
    if config["dataset"] == "synthetic":
        patterns.append(SCORE)
    outputs = [in_round(pattern, r) for r in range(ROUNDS + 1) for pattern in patterns]
    return outputs + ([ROUNDS_TABLE] if ROUNDS else [])


def dataset_files():
    """The data step's outputs: the competition layout under data_dir."""
    return {
        "train": directory(f"{DATA_DIR}/train"),
        "train_masks": directory(f"{DATA_DIR}/train_masks"),
        "test": directory(f"{DATA_DIR}/test"),
        "train_masks_csv": f"{DATA_DIR}/train_masks.csv",
        "metadata": f"{DATA_DIR}/metadata.csv",
        "sample_submission": f"{DATA_DIR}/sample_submission.csv",
    }


def dataset_inputs():
    """The same paths as inputs of later rules (directory() is for outputs only)."""
    return {key: str(value) for key, value in dataset_files().items()}


def folder_of(name, up=0, io="input"):
    """A params function: the folder of the job's file ``name`` (its first, for a list) in its
    input (or ``io="output"``), ``up`` levels above. Taken from the job's own paths, not spelled
    again, so that a storage plugin that moves them (no shared filesystem) moves the folder too.
    """

    def folder(wildcards, input, output):
        files = (input if io == "input" else output)[name]
        return str(Path(files if isinstance(files, str) else files[0]).parents[up])

    return folder


def stage_code(stage):
    """The digest of the code ``carvana <stage>`` runs (its module's run and the modules it
    imports): a params entry, so that editing that code reruns the stage and what follows it.
    """
    return stage_digest(stage)


def model_stage_code(stage):
    """``stage_code`` of a stage that runs one model's networks (train, oof), as a function of the
    job's wildcards: every other architecture's module is left out, so editing one network's
    source reruns that model's jobs only."""

    def code(wildcards):
        return stage_digest(stage, ARCH_MODULES - {MODELS[wildcards.model].module})

    return code


# Shared by the jobs that run networks over images: the OOF maps, prediction, pseudo labels.


def tta_args():
    """The TTA flags of prediction, which the OOF maps and the pseudo labels are made with too."""
    tta = config["predict"]["tta"]
    flips = " ".join(
        f"--{name}" if tta[name] else f"--no-{name}" for name in ("hflip", "vflip")
    )
    return f"{flips} --scales {' '.join(str(scale) for scale in tta['scales'])}"


def shard_args(wildcards):
    """--shard i --shards n from Snakemake's scatter item "i-of-n"."""
    index, count = wildcards.scatteritem.split("-of-")
    return f"--shard {index} --shards {count}"
