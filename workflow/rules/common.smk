# Helpers that rules call, and the config check. Rules hold no logic of their own.

import json
import shlex
import sys
from pathlib import Path

from snakemake.utils import min_version

from carvana.config import check_config
from carvana.competition import (
    COMPETITION_SIZE,
    COMPETITION_TEST_IMAGES,
    COMPETITION_TRAIN_IMAGES,
)
from carvana.layout import scaled_size
from carvana.data.download import archive_names
from carvana.job_shell import shell_prefix
from carvana.models.pretrained import files_by_key
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


def gpu_budget():
    """GPUs the run may use at once (--resources gpu, set by the workflow profile to this
    machine's count), or None where nothing caps them (a cluster)."""
    resource = workflow.global_resources.get("gpu")
    value = getattr(resource, "value", resource)
    return value if isinstance(value, int) else None


def warn_about_gpu_cuts():
    """Snakemake silently cuts a job's gpu to --resources gpu: say so before any job runs."""
    budget = gpu_budget()
    asked = {f"models.{name}.gpu": spec.gpu for name, spec in MODELS.items()}
    asked["predict.gpu"] = config["predict"]["gpu"]
    if budget == 0 and any(asked.values()):
        print(
            "note: gpu=0 (no GPU on this machine): network jobs run on the CPU",
            file=sys.stderr,
        )
    elif budget is not None:
        for key, count in asked.items():
            if count > budget:
                print(
                    f"warning: {key} asks for {count} GPUs per job but --resources gpu={budget}: "
                    f"those jobs get {budget}; raise --resources gpu to give them all",
                    file=sys.stderr,
                )


warn_about_gpu_cuts()

ENV = "../../envs/carvana.yaml"
DATA = Path(config["data_dir"])
TRUTH = "results/truth/test_masks.csv"  # true masks of the generated test set, read only to score
DATA_REPORT = "results/data_report.json"
FOLDS = "results/folds.csv"
# A round's stages write under {results}: results/ for round 0, the plain pipeline, and
# results/pseudo/round<r>/ for pseudo-labelling round r (see pseudo.smk).
ROUNDS = config["pseudo"]["rounds"]
RUN_DIR = "{results}/models/{model}/fold{fold}"  # one training job's folder
THRESHOLDS = "{results}/tuning/thresholds.json"
OOF_SCORES = "{results}/tuning/oof_scores.csv"
OOF_IMAGES = "{results}/tuning/oof_images.csv"  # each training image's OOF Dice
ABLATION = (
    "{results}/tuning/ablation.csv"  # what each step of the recipe buys, out of fold
)
PSEUDO_LABELS = (
    "results/pseudo/round{round}/labels/fold{fold}"  # one fold's labels of a round
)
PSEUDO_SHARD = (
    f"{PSEUDO_LABELS}/shard_{{scatteritem}}"  # a shard's masks and their table
)
PSEUDO_TABLE = (
    f"{PSEUDO_LABELS}/labels.csv"  # the fold's table: every shard's, with its files
)
ROUNDS_TABLE = "results/pseudo/rounds.csv"  # each round's OOF Dice, score and job time
REPORT_PAGES = [
    "results/report/summary.html",
    "results/report/training_curves.png",
    "results/report/worst_oof",
]
SUBMISSION = "{results}/submission.csv.gz"
SUBMISSION_CHECK = "{results}/submission_check.json"
SCORE = (
    "{results}/score.json"  # the generated dataset only: the real test masks are secret
)


wildcard_constraints:
    results=r"results(/pseudo/round[1-9]\d*)?",
    round=r"[1-9]\d*",
    model="|".join(MODELS),
    fold=r"\d+",
    scatteritem=r"\d+-of-\d+",


def round_dir(number):
    """Where round ``number``'s stages write: results for round 0, else results/pseudo/round<r>."""
    return "results" if int(number) == 0 else f"results/pseudo/round{int(number)}"


def round_of(results):
    """The round whose folder is ``results`` (the wildcard)."""
    return 0 if results == "results" else int(results.rsplit("round", 1)[1])


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


def dataset_files():
    """The data step's outputs: the competition layout under data_dir."""
    return {
        "train": directory(str(DATA / "train")),
        "train_masks": directory(str(DATA / "train_masks")),
        "test": directory(str(DATA / "test")),
        "train_masks_csv": str(DATA / "train_masks.csv"),
        "metadata": str(DATA / "metadata.csv"),
        "sample_submission": str(DATA / "sample_submission.csv"),
    }


def dataset_inputs():
    """The same paths as inputs of later rules (directory() is for outputs only)."""
    return {key: str(value) for key, value in dataset_files().items()}


def data_dir_of_output(wildcards, output):
    """The dataset folder, read off the data step's outputs."""
    return str(Path(output.train_masks_csv).parent)


def data_dir_of_sample_submission(wildcards, input):
    """The dataset folder, read off a rule's sample_submission input."""
    return str(Path(input.sample_submission).parent)


def data_dir_of_input(wildcards, input):
    """The dataset folder, read off a rule's inputs."""
    return str(Path(input.train_masks_csv).parent)


def full_competition():
    """Whether the real data must have the competition's exact counts and size."""
    dataset = config["dataset"]
    return dataset != "synthetic" and config[dataset]["full_competition"]


def image_size():
    """(height, width) every image must have, or None to read it off a hand-made subset."""
    if config["dataset"] == "synthetic":
        return scaled_size(config["synthetic"]["image_scale"])
    return COMPETITION_SIZE if full_competition() else None


ARCHIVE_DIR = Path(config["kaggle"]["archive_dir"])


def kaggle_archives():
    """The archives the download rule fetches, one job each."""
    return [str(ARCHIVE_DIR / name) for name in archive_names(config["kaggle"]["hq"])]


def archive_dir_of_output(wildcards, output):
    return str(Path(output.archive).parent)


def archive_dir_of_input(wildcards, input):
    return str(Path(input.archives[0]).parent)


def import_kaggle_args():
    return " --hq" if config["kaggle"]["hq"] else ""


def submit_args():
    """The run's config files (named in the submission's message), its dataset, and how long to
    wait for Kaggle's score."""
    configs = " ".join(f"--config {path}" for path in workflow.configfiles)
    kaggle = config["kaggle"]
    return (
        f"{configs} --dataset {config['dataset']} --competition {kaggle['competition']} "
        f"--score-wait-s {kaggle['score_wait_s']} --score-poll-s {kaggle['score_poll_s']}"
    )


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


def validate_data_args():
    size = image_size()
    args = f"--image-size {size[0]} {size[1]}" if size else ""
    if full_competition():
        args += f" --train-images {COMPETITION_TRAIN_IMAGES} --test-images {COMPETITION_TEST_IMAGES}"
    if config["validate_data"]["decode_test"]:
        args += " --decode-test"
    return args


def make_folds_args():
    folds = config["folds"]
    return f"--n-folds {folds['n_folds']} --seed {folds['seed']} --stratify {folds['stratify']}"


def model_json(wildcards):
    """This model's settings only, as JSON: a change to one model reruns that model's jobs alone."""
    return MODELS[wildcards.model].to_json()


def stage_code(stage):
    """The digest of the code ``carvana <stage>`` runs (its module's run and the modules it
    imports): a params entry, so that editing that code reruns the stage and what follows it."""
    return stage_digest(stage)


def train_code(wildcards):
    """The training code of this model: every other architecture's module is left out, so
    editing one network's source retrains that model only."""
    return stage_digest("train", ARCH_MODULES - {MODELS[wildcards.model].module})


def oof_code(wildcards):
    """The OOF maps' code for this model, every other architecture's module left out, as for
    training: editing one network's source remakes that model's maps only."""
    return stage_digest("oof", ARCH_MODULES - {MODELS[wildcards.model].module})


# The ImageNet weight files the models start from, by key (vgg11, smp-<encoder>): one fetch each.
PRETRAINED = files_by_key(list(MODELS.values()))


def pretrained_rule(key):
    """The name of the rule that fetches the file ``key``."""
    return f"pretrained_{key.replace('-', '_')}"


def pretrained_inputs(wildcards):
    """The weight files this model starts from, as they lie in the libraries' caches. Their
    content is fixed by their hash, so only their presence counts (ancient): a file fetched again
    retrains nothing."""
    spec = MODELS[wildcards.model]
    return [ancient(str(file.path)) for file in files_by_key([spec]).values()]


def weight_source_args():
    """The mirror settings of pretrained_weights, as fetch-weights flags."""
    given = config["pretrained_weights"]
    flags = {"--base-url": given["base_url"], "--hf-endpoint": given["hf_endpoint"]}
    return " ".join(
        f"{flag} {shlex.quote(value)}" for flag, value in flags.items() if value
    )


# In the fetch's shell text, where no rerun trigger sees it: the file is the same from any mirror.
WEIGHT_SOURCE = weight_source_args()


def model_threads(wildcards):
    return MODELS[wildcards.model].threads


def model_gpus(wildcards):
    return MODELS[wildcards.model].gpu


def models_dir_of_input(wildcards, input):
    """The folder of every model's runs, read off an OOF folder: <models>/<model>/fold<k>/oof."""
    return str(Path(input.oof[0]).parents[2])


def folder_of_thresholds(wildcards, output):
    return str(Path(output.thresholds).parent)


def folder_of_input_thresholds(wildcards, input):
    return str(Path(input.thresholds).parent)


def folder_of_curves(wildcards, output):
    return str(Path(output.curves).parent)


def report_figures_args(wildcards, input):
    score = f" --score-path {input.score}" if input.score else ""
    return f"--worst {config['report']['worst_images']}{score}"


def offline_score():
    """The offline score, shown in the report; the real competition has none."""
    return in_round(SCORE, 0) if config["dataset"] == "synthetic" else []


def config_json():
    """The run's config (all config files merged), shown in the report: round 0's, so without
    the pseudo-labelling rounds' settings, which do not touch it."""
    return json.dumps(
        {k: v for k, v in config.items() if k != "pseudo"}, sort_keys=True
    )


def tune_args():
    grid = config["tune"]["thresholds"]
    flag = config["tune"]["flag"]
    ensemble = config["ensemble"]
    models = " ".join(f"--model {name}" for name in MODELS)
    thresholds = f"--thresholds {grid['start']} {grid['stop']} {grid['step']}"
    if ensemble["weights"] == "auto":
        weights = "--auto-weights"
    else:
        weights = " ".join(
            f"--weight {name}={weight}" for name, weight in ensemble["weights"].items()
        )
    weights += (
        f" --weight-step {ensemble['weight_step']}"  # the ablation searches either way
    )
    flags = f"--min-dice {flag['min_dice']} --max-gap {flag['max_gap']}"
    return " ".join(filter(None, [models, thresholds, weights, flags]))


def tta_args():
    """The TTA flags of prediction, which the OOF maps are made with too."""
    tta = config["predict"]["tta"]
    flips = " ".join(
        f"--{name}" if tta[name] else f"--no-{name}" for name in ("hflip", "vflip")
    )
    return f"{flips} --scales {' '.join(str(scale) for scale in tta['scales'])}"


def folder_of_input_weights(wildcards, input):
    """A training job's folder, read off its weights.pt."""
    return str(Path(input.weights).parent)


def shard_args(wildcards):
    """--shard i --shards n from Snakemake's scatter item "i-of-n"."""
    index, count = wildcards.scatteritem.split("-of-")
    return f"--shard {index} --shards {count}"


def predict_args():
    predict = config["predict"]
    common = f"--batch-size {predict['batch_size']} {tta_args()}"
    compiled = "--compile" if predict["compile"] else ""
    workers = f"--workers {predict['workers']}" if predict["workers"] else ""
    return " ".join(filter(None, [common, compiled, workers]))


def predict_gpus():
    return config["predict"]["gpu"]


def final_outputs():
    """What `all` asks for beyond training: each round's thresholds, submission, its check and
    the offline score, and with pseudo-labelling rounds the table that compares them."""
    patterns = [THRESHOLDS, SUBMISSION, SUBMISSION_CHECK]
    if config["dataset"] == "synthetic":
        patterns.append(SCORE)
    outputs = [in_round(pattern, r) for r in range(ROUNDS + 1) for pattern in patterns]
    return outputs + ([ROUNDS_TABLE] if ROUNDS else [])


def last_round(pattern):
    """``pattern`` in the last round's folder: the submission that submit uploads."""
    return in_round(pattern, ROUNDS)


# Pseudo-labelling rounds (pseudo.smk).


def pseudo_label_networks(wildcards):
    """The networks that label the test images for fold k of round r: round r-1's fold-k
    networks of every model, and no other fold's, which saw fold k's held-out images."""
    previous = round_dir(int(wildcards.round) - 1)
    return expand(
        f"{RUN_DIR}/weights.pt", results=previous, model=MODELS, fold=wildcards.fold
    )


def pseudo_label_thresholds(wildcards):
    """The round before's tuning: the threshold and weights that its labels are made with."""
    return in_round(THRESHOLDS, int(wildcards.round) - 1)


def pseudo_label_args():
    pseudo, predict = config["pseudo"], config["predict"]
    workers = f" --workers {predict['workers']}" if predict["workers"] else ""
    return f"--band {pseudo['band']} --batch-size {predict['batch_size']} {tta_args()}{workers}"


def round_labels(wildcards):
    """A training job's pseudo labels table: none in round 0, its fold's of its round otherwise
    (the table lists the masks' files in the fold's shards)."""
    number = round_of(wildcards.results)
    if number == 0:
        return []
    return expand(PSEUDO_TABLE, round=number, fold=wildcards.fold)


def round_start(wildcards):
    """The weights a round's training job starts from: the same model and fold of the round
    before (pseudo.start previous), or none."""
    number = round_of(wildcards.results)
    if number == 0 or config["pseudo"]["start"] != "previous":
        return []
    return expand(
        f"{RUN_DIR}/weights.pt",
        results=round_dir(number - 1),
        model=wildcards.model,
        fold=wildcards.fold,
    )


def round_train_args(wildcards):
    """The training job's pseudo-labelling flags: none in round 0, whatever pseudo says. Of the
    wildcards alone: Snakemake does not compare params made from a job's input, and a change of
    these must rerun the round."""
    labels = round_labels(wildcards)
    if not labels:
        return ""
    pseudo = config["pseudo"]
    start = "".join(f" --init-weights {path}" for path in round_start(wildcards))
    return (
        f"--pseudo-labels {Path(labels[0]).parent} --pseudo-share {pseudo['share']} "
        f"--pseudo-select {pseudo['select']} --pseudo-ratio {pseudo['ratio']}{start}"
    )


def round_scores():
    """Each round's offline score (the generated dataset only), for the rounds table."""
    if config["dataset"] != "synthetic":
        return []
    return [in_round(SCORE, r) for r in range(ROUNDS + 1)]


def round_dirs_of_input(wildcards, input):
    """Each round's folder, round 0 first, read off its thresholds.json: <folder>/tuning/..."""
    return " ".join(str(Path(path).parents[1]) for path in input.thresholds)
