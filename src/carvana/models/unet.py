"""The original UNet of Ronneberger et al. (2015), with BatchNorm after every convolution.

Every 3x3 convolution is unpadded, so each stage trims its input's border; a 2x2 up-convolution
doubles the size and the encoder's feature map is centre-cropped to match before concatenation,
then two more convolutions. At the paper's size a 572x572 input gives a 388x388 output. At widths
64..1024 with one output channel the network has 31,043,521 parameters.

The paper puts dropout "at the end of the contracting path" (section 3.1); the authors' released
network drops half of the outputs of the 512- and the 1024-channel stages (before the pooling and
the skip connection of the first), which ``dropout`` reproduces.

Written here because segmentation-models-pytorch has only padded UNets, whose output matches the
input size: the unpadded network needs the overlap-tile strategy (``carvana.models.tiling``) to
cover a whole image.
"""

from __future__ import annotations

import torch
from torch import nn

from carvana.models.geometry import UNET_DEPTH as DEPTH


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _centre_crop(features: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top = (features.shape[-2] - height) // 2
    left = (features.shape[-1] - width) // 2
    return features[..., top : top + height, left : left + width]


class UNet(nn.Module):
    """Input (N, 3, H, W) -> logits (N, 1, H - m, W - m) with m = 2 * :func:`geometry.unet_border`.

    ``width`` is the first stage's channel count (64 in the paper); every stage doubles it, so a
    smaller width shrinks the network for small machines without changing its geometry.
    ``dropout``: the rate of element-wise dropout after the last two contracting stages (0.5 in
    the authors' network; 0 leaves it out). Active in training only.
    """

    def __init__(
        self, in_channels: int = 3, out_channels: int = 1, width: int = 64, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout is a rate in [0, 1), got {dropout}")
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        widths = [width * 2**i for i in range(DEPTH + 1)]  # 64, 128, 256, 512, 1024
        self.down = nn.ModuleList()
        previous = in_channels
        for channels in widths:
            self.down.append(_double_conv(previous, channels))
            previous = channels
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for channels in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(channels * 2, channels, 2, stride=2))
            self.up_conv.append(_double_conv(channels * 2, channels))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for index, stage in enumerate(self.down):
            x = stage(x)
            if index >= DEPTH - 1:  # the end of the contracting path: the 512 and 1024 stages
                x = self.dropout(x)
            if index < DEPTH:
                skips.append(x)
                x = self.pool(x)
        for up, conv, skip in zip(self.up, self.up_conv, reversed(skips), strict=True):
            x = up(x)
            x = conv(torch.cat([_centre_crop(skip, x.shape[-2], x.shape[-1]), x], dim=1))
        logits: torch.Tensor = self.head(x)
        return logits
