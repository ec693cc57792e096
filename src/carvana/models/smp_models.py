"""Any segmentation-models-pytorch architecture and encoder, named in config (``smp.Unet`` with
``encoder: resnet34``), so the ensemble can grow by config alone.

smp 0.6 fetches encoder weights from the Hugging Face hub. The workflow's
``pretrained_smp_<encoder>`` rules (``carvana fetch-weights``) put them in the hub's cache before
training; a job checks them there, puts the hub in offline mode, so weights come from that cache
only, and a miss or a damaged file says how to fetch them.
"""

from __future__ import annotations

from torch import nn

from carvana.models.pretrained import hub_file
from carvana.models.spec import SMP_PREFIX


def check_encoder(encoder: str) -> None:
    """ValueError listing smp's encoders unless ``encoder`` is one of them (imports smp: seconds)."""
    import segmentation_models_pytorch as smp

    encoders = smp.encoders.get_encoder_names()
    if encoder not in encoders:
        raise ValueError(f"unknown smp encoder {encoder!r}; valid: {', '.join(encoders)}")


def build_smp(arch: str, encoder: str, pretrained: bool) -> nn.Module:
    """``arch`` as in config (``smp.Unet``); one output channel of logits at the input's size.
    Pretrained weights come from the hub's cache, checked first (``HubFile.problems``); the hub is
    put in offline mode for the rest of the process, so a miss never waits on the network."""
    import segmentation_models_pytorch as smp
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True  # read by the hub at each call; the variable only at its import
    check_encoder(encoder)
    if pretrained:
        weights = hub_file(encoder)
        fetch = "the workflow fetches them before training; by hand: carvana fetch-weights --weights"
        problems = weights.problems()
        if problems:
            listed = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
            raise FileNotFoundError(
                f"ImageNet weights of the smp encoder {encoder!r} in {weights.snapshot_dir} are not "
                f"usable ({listed}): {fetch} {weights.key} (or set HF_HOME to a folder that holds "
                "them, or set pretrained: false)"
            )
    name = arch.removeprefix(SMP_PREFIX)
    model: nn.Module = smp.create_model(
        name, encoder_name=encoder, encoder_weights="imagenet" if pretrained else None, classes=1
    )
    return model
