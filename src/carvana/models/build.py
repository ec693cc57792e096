"""A configured model's network: spec in, ``torch.nn.Module`` out (logits, one channel)."""

from __future__ import annotations

from torch import nn

from carvana.models.spec import SMP_ARCH, ModelSpec, arch_info
from carvana.models.unet import UNet
from carvana.models.unet11 import UNet11
from carvana.models.unet1024 import UNet1024

UNET_WIDTH = 64  # the paper's first-stage width, which ModelSpec.width multiplies


def build_model(spec: ModelSpec, load_pretrained: bool = True) -> nn.Module:
    """The network of ``spec``, freshly initialised, with ImageNet encoder weights if the spec asks
    for them and ``load_pretrained`` allows. Without them (a network about to load trained
    weights, or one only counted), it needs no weight file at all."""
    pretrained = spec.pretrained and load_pretrained
    if spec.arch == "unet":
        return UNet(width=max(1, round(UNET_WIDTH * spec.width)), dropout=spec.dropout)
    if spec.arch == "unet1024":
        return UNet1024(width=spec.width)
    if spec.arch == "unet11":
        return UNet11(pretrained=pretrained, width=spec.width)
    if arch_info(spec.arch) is SMP_ARCH and spec.encoder:
        from carvana.models.smp_models import build_smp

        return build_smp(spec.arch, spec.encoder, pretrained)
    raise ValueError(f"no builder for architecture {spec.arch!r}")


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
