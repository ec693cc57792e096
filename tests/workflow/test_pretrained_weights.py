"""Pretrained weights as a user meets them: the workflow fetches them before training, once.

The server on 127.0.0.1 stands in for the Hugging Face hub (``pretrained_weights.hf_endpoint``),
serving an smp encoder's files at the revision smp pins; the run's caches are its own."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from workflow_runs import ROOT, TINY, edit_config, environ, snakemake, workflow_copy

from carvana.models.pretrained import hub_file
from weights_server import WeightsServer

ENCODER = "mobilenet_v2"  # smp's smallest encoder with ImageNet weights: 2.2 M parameters
MODEL = {"arch": "smp.Unet", "encoder": ENCODER, "pretrained": True, "input_size": [32, 64]}
TRAINED = ["results/models/mobile/fold0/weights.pt"]  # a stage that reads them


def encoder_files() -> dict[str, bytes]:
    """What the hub holds for the encoder: its config and weights (random: speed does not care)."""
    import segmentation_models_pytorch as smp
    from safetensors.torch import save

    hub = hub_file(ENCODER)
    state = smp.encoders.get_encoder(ENCODER, weights=None).state_dict()
    base = f"/{hub.repo_id}/resolve/{hub.revision}"
    return {f"{base}/config.json": b"{}", f"{base}/model.safetensors": save(state)}


def jobs_run(output: str) -> list[str]:
    return re.findall(r"^\s*(?:local)?rule (\w+):", output, re.MULTILINE)


@pytest.mark.slow
def test_encoder_weights_arrive_before_training_and_are_fetched_once(tmp_path: Path) -> None:
    models = {"mobile": {**MODEL, "epochs": 1, "batch_size": 4, "gpu": 0}}
    config = {**TINY, "models": models, "ensemble": {"weights": {}}}
    work = workflow_copy(tmp_path, config)
    env = environ(work, HF_HOME=str(tmp_path / "hf"), TORCH_HOME=str(tmp_path / "torch"))
    files = encoder_files()
    weights_path = max(files)  # .../model.safetensors sorts after .../config.json
    with WeightsServer(files, lifetime_s=600) as server:
        edit_config(work, {"pretrained_weights": {"base_url": None, "hf_endpoint": server.url}})
        first = snakemake(work, "--cores", "2", *TRAINED, env=env)
        assert sorted(server.downloads()) == sorted(files)
        ran = jobs_run(first.stderr)
        assert ran.count("pretrained_smp_mobilenet_v2") == 1 and ran.count("train") == 1
        assert ran.index("pretrained_smp_mobilenet_v2") < ran.index("train")
        (cached,) = (tmp_path / "hf").rglob("model.safetensors")  # in the cache the training jobs read
        assert cached.read_bytes() == files[weights_path]
        log = (work / "results/logs/pretrained/smp-mobilenet_v2.log").read_text()
        assert f"fetched from {server.url}" in log
        # trained from the checked cache, the hub offline
        assert "best epoch 1 of 1" in (work / "results/logs/train/mobile_fold0.log").read_text()

        # a new mirror: the cached file is the same from any, so nothing runs
        edit_config(work, {"pretrained_weights.hf_endpoint": "http://127.0.0.1:9"})
        unchanged = snakemake(work, "-n", *TRAINED, env=env)
        assert "Nothing to be done" in unchanged.stdout + unchanged.stderr

        # fetched again by force (Snakemake deletes the snapshot's entry first; the hub's cache
        # relinks the blob it still holds): the fetch alone runs, as training takes the file by
        # its presence
        edit_config(work, {"pretrained_weights.hf_endpoint": server.url})
        again = snakemake(
            work, "--cores", "2", "--forcerun", "pretrained_smp_mobilenet_v2", *TRAINED, env=env
        )
        assert jobs_run(again.stderr) == ["pretrained_smp_mobilenet_v2"]
        assert cached.read_bytes() == files[weights_path]
    nothing = snakemake(work, "-n", *TRAINED, env=env)
    assert "Nothing to be done" in nothing.stdout + nothing.stderr


def test_the_competition_config_fetches_vgg11_locally_before_unet11_trains(tmp_path: Path) -> None:
    work = workflow_copy(tmp_path)
    (work / "competition.yaml").write_text((ROOT / "competition.yaml").read_text())
    env = environ(work, TORCH_HOME=str(tmp_path / "torch"))
    plan = snakemake(work, "-n", "--configfile", "competition.yaml", env=env).stdout
    vgg11 = tmp_path / "torch/hub/checkpoints/vgg11-8a719046.pth"
    assert f"rule pretrained_vgg11:\n    output: {vgg11}\n" in plan
    train_inputs = re.findall(r"rule train:\n    input: (.*)\n    output: results/models/(\w+)/", plan)
    assert len(train_inputs) == 15
    for inputs, model in train_inputs:
        assert (str(vgg11) in inputs) == (model == "unet11"), model

    # a file already in the cache (fetched by torchvision before, or by hand) is not fetched
    vgg11.parent.mkdir(parents=True)
    vgg11.write_bytes(b"cached before")
    cached = snakemake(work, "-n", "--configfile", "competition.yaml", env=env).stdout
    assert "rule pretrained_vgg11:" not in cached and re.search(r"^train\s+15$", cached, re.MULTILINE)


LOCAL_RULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(configfiles=[Path(sys.argv[1])]),
        storage_settings=StorageSettings(),
        snakefile=Path("Snakefile"),
        workdir=Path("."),
    )._workflow
    print(json.dumps(sorted(workflow._localrules)))
"""


def test_the_rules_that_need_the_internet_are_local_on_a_cluster(tmp_path: Path) -> None:
    # Local rules run where Snakemake runs (on a cluster, a login node that reaches the internet);
    # the others go to sbatch. Read off the workflow as Snakemake's API builds it.
    work = workflow_copy(tmp_path)
    (work / "competition.yaml").write_text((ROOT / "competition.yaml").read_text())
    result = subprocess.run(
        [sys.executable, "-c", LOCAL_RULES, "competition.yaml"],
        cwd=work,
        env=environ(work, TORCH_HOME=str(tmp_path / "torch")),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert json.loads(result.stdout.splitlines()[-1]) == ["download", "pretrained_vgg11", "submit"]
