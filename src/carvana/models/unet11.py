"""UNet11 (TernausNet, Iglovikov & Shvets 2018): a UNet whose encoder is VGG11's ``features``.

The encoder is torchvision's VGG11 (convolutions at indices 0, 3, 6, 8, 11, 13, 16, 18 of
``features``, ReLU, five 2x2 poolings). A decoder block is a 3x3 convolution with ReLU (in -> mid)
and a stride-2 transposed convolution (kernel 3, padding 1, output padding 1) with ReLU
(mid -> out). With num_filters = 32 the network has 22,927,393 parameters. Height and width must
be divisible by 32. A width multiplier below 1 scales the encoder and decoder alike, for small
machines; the encoder is then VGG11-shaped but no longer VGG11, so it cannot take ImageNet weights.

ImageNet weights are read from torchvision's cache (``torch.hub.get_dir()/checkpoints``), where
the workflow's ``pretrained_vgg11`` rule (``carvana fetch-weights``) puts them before training;
a job never downloads.
"""

from __future__ import annotations

import torch
from torch import nn

from carvana.models.pretrained import VGG11

DIVISOR = 32
VGG11_LAYERS: list[int | str] = [
    64,
    "M",
    128,
    "M",
    256,
    256,
    "M",
    512,
    512,
    "M",
    512,
    512,
    "M",
]  # torchvision's "A"


def _conv_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


def _decoder_block(in_channels: int, middle: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        _conv_relu(in_channels, middle),
        nn.ConvTranspose2d(middle, out_channels, 3, stride=2, padding=1, output_padding=1),
        nn.ReLU(inplace=True),
    )


def load_vgg11_features(pretrained: bool, width: float = 1.0) -> nn.Sequential:
    """torchvision's VGG11 ``features``, with ImageNet weights from the local cache if asked
    (``carvana.models.pretrained.VGG11``: checked against the hash prefix in its name first).

    ``width`` != 1 gives the same layer sequence with every channel count scaled (no weights).
    torchvision is imported here, not with the module: its import takes about two seconds, which
    every job that builds a network would pay otherwise.
    """
    import torchvision

    if width != 1.0:
        if pretrained:
            raise ValueError(f"ImageNet weights exist for VGG11 at width 1 only, got width {width}")
        layers = [layer if layer == "M" else round(int(layer) * width) for layer in VGG11_LAYERS]
        scaled: nn.Sequential = torchvision.models.vgg.make_layers(layers)
        return scaled
    vgg = torchvision.models.vgg11(weights=None)
    if pretrained:
        fetch = f"the workflow fetches it again (by hand: carvana fetch-weights --weights {VGG11.key})"
        path = VGG11.path
        if not path.is_file():
            raise FileNotFoundError(
                f"ImageNet weights for VGG11 not found at {path}: the workflow fetches them before "
                f"training (rule pretrained_{VGG11.key}); by hand: carvana fetch-weights --weights "
                f"{VGG11.key} (or set TORCH_HOME to a folder whose hub/checkpoints/ holds "
                f"{VGG11.file_name}, or set pretrained: false)"
            )
        if not VGG11.verified():
            raise ValueError(
                f"{path} is damaged: its sha256 does not begin {VGG11.hash_prefix} as its name says. "
                f"Delete it and rerun: {fetch}"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a file of the right hash that torch cannot read: not VGG11's
            raise ValueError(f"{path} is not a readable VGG11 state dict ({error})") from None
        vgg.load_state_dict(state)
    features: nn.Sequential = vgg.features
    return features


class UNet11(nn.Module):
    """Input (N, 3, H, W), H and W divisible by 32 -> logits (N, 1, H, W)."""

    def __init__(
        self, num_filters: int = 32, pretrained: bool = False, out_channels: int = 1, width: float = 1.0
    ) -> None:
        super().__init__()
        if width <= 0 or (32 * width) % 1 or (num_filters * width) % 1:
            raise ValueError(
                f"width multiplier must be a positive multiple of 1/32 that keeps num_filters * width whole "
                f"(e.g. 0.125, 0.25, 0.5), got {width}"
            )
        features = load_vgg11_features(pretrained, width)
        self.pool = nn.MaxPool2d(2, 2)
        relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Sequential(features[0], relu)
        self.conv2 = nn.Sequential(features[3], relu)
        self.conv3 = nn.Sequential(features[6], relu, features[8], relu)
        self.conv4 = nn.Sequential(features[11], relu, features[13], relu)
        self.conv5 = nn.Sequential(features[16], relu, features[18], relu)
        f = round(num_filters * width)
        self.centre = _decoder_block(f * 16, f * 16, f * 8)
        self.dec5 = _decoder_block(f * (16 + 8), f * 16, f * 8)
        self.dec4 = _decoder_block(f * (16 + 8), f * 16, f * 4)
        self.dec3 = _decoder_block(f * (8 + 4), f * 8, f * 2)
        self.dec2 = _decoder_block(f * (4 + 2), f * 4, f)
        self.dec1 = _conv_relu(f * (2 + 1), f)
        self.head = nn.Conv2d(f, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv1 = self.conv1(x)
        conv2 = self.conv2(self.pool(conv1))
        conv3 = self.conv3(self.pool(conv2))
        conv4 = self.conv4(self.pool(conv3))
        conv5 = self.conv5(self.pool(conv4))
        centre = self.centre(self.pool(conv5))
        dec5 = self.dec5(torch.cat([centre, conv5], 1))
        dec4 = self.dec4(torch.cat([dec5, conv4], 1))
        dec3 = self.dec3(torch.cat([dec4, conv3], 1))
        dec2 = self.dec2(torch.cat([dec3, conv2], 1))
        dec1 = self.dec1(torch.cat([dec2, conv1], 1))
        logits: torch.Tensor = self.head(dec1)
        return logits
