"""Any segmentation-models-pytorch architecture and encoder, named in config (``smp.Unet`` with
``encoder: resnet34``), so the ensemble can grow by config alone.

smp 0.6 fetches encoder weights from the Hugging Face hub. The workflow's
``pretrained_smp_<encoder>`` rules (``carvana fetch-weights``) put them in the hub's cache before
training; a job puts the hub in offline mode, so weights come from that cache only, and a miss
says how to fetch them.
"""

from __future__ import annotations

import os

from torch import nn

from carvana.models.spec import SMP_PREFIX


def check_encoder(encoder: str) -> None:
    """ValueError listing smp's encoders unless ``encoder`` is one of them (imports smp: seconds)."""
    import segmentation_models_pytorch as smp

    encoders = smp.encoders.get_encoder_names()
    if encoder not in encoders:
        raise ValueError(f"unknown smp encoder {encoder!r}; valid: {', '.join(encoders)}")


def build_smp(arch: str, encoder: str, pretrained: bool) -> nn.Module:
    """``arch`` as in config (``smp.Unet``); one output channel of logits at the input's size."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import segmentation_models_pytorch as smp

    check_encoder(encoder)
    name = arch.removeprefix(SMP_PREFIX)
    try:
        model: nn.Module = smp.create_model(
            name, encoder_name=encoder, encoder_weights="imagenet" if pretrained else None, classes=1
        )
    except Exception as error:  # the hub's offline miss comes in several exception types
        if not pretrained:
            raise
        from huggingface_hub.constants import HF_HUB_CACHE

        raise FileNotFoundError(
            f"ImageNet weights for the smp encoder {encoder!r} are not in the Hugging Face cache "
            f"({HF_HUB_CACHE}): the workflow fetches them before training; by hand: carvana "
            f"fetch-weights --weights smp-{encoder} (or set HF_HOME to a folder that holds them, or set "
            f"pretrained: false) ({error})"
        ) from error
    return model
