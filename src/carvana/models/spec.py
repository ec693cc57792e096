"""A configured model: one entry of config.yaml's ``models:``, as a frozen, checked spec.

``ModelSpec.from_entry(name, entry)`` fills the defaults and raises ``ValueError`` with the valid
choices for anything it cannot take: an unknown architecture, a size the architecture cannot
take, a negative learning rate. It imports no torch, so the workflow can check every model when it
reads the config, before any job runs.

Architectures: ``unet`` (the original, unpadded, with overlap tiles), ``unet1024``, ``unet11``, and
any segmentation-models-pytorch architecture as ``smp.<Name>`` (e.g. ``smp.Unet``) with an
``encoder`` from its list (e.g. ``resnet34``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from carvana import schema
from carvana.models.geometry import nearest_multiples, unet_border, unet_nearest_sizes, unet_output_size


@dataclass(frozen=True)
class Arch:
    """What the pipeline knows of an architecture: its module (in its training jobs' code digest), the
    reference's optimizer, and the divisor its input sides need (None: overlap tiles instead)."""

    module: str
    optimizer: str
    divisor: int | None


ARCHS = {
    "unet": Arch("carvana.models.unet", "sgd", None),
    "unet1024": Arch("carvana.models.unet1024", "rmsprop", 64),
    "unet11": Arch("carvana.models.unet11", "adam", 32),
}
SMP_PREFIX = "smp."
SMP_ARCH = Arch("carvana.models.smp_models", "adam", 32)
SMP_ARCHS = (
    "Unet",
    "UnetPlusPlus",
    "MAnet",
    "Linknet",
    "FPN",
    "PSPNet",
    "DeepLabV3",
    "DeepLabV3Plus",
    "PAN",
    "UPerNet",
    "Segformer",
    "DPT",
)
ARCH_MODULES = frozenset(arch.module for arch in (*ARCHS.values(), SMP_ARCH))  # one network each
OPTIMIZER_LR = {"sgd": 0.01, "rmsprop": 1e-4, "adam": 1e-4, "adamw": 1e-4}
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")
SCHEDULERS = ("cosine", "none")
PAPER_DROPOUT = 0.5  # the original UNet's, at the end of its contracting path
RUN_KEYS = ("threads", "workers", "compile")  # how a job runs, not what it learns
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # a model's name is a path component and a wildcard value


def arch_info(arch: str) -> Arch:
    if arch in ARCHS:
        return ARCHS[arch]
    if arch.startswith(SMP_PREFIX) and arch[len(SMP_PREFIX) :] in SMP_ARCHS:
        return SMP_ARCH
    raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(architectures())}")


def architectures() -> list[str]:
    """Every architecture a model's ``arch`` may name."""
    return [*ARCHS, *(SMP_PREFIX + name for name in SMP_ARCHS)]


@dataclass(frozen=True)
class OptimizerSpec:
    """``name``, ``lr`` and ``momentum`` have no defaults: the schema's null for each stands for
    one that depends on the architecture or the optimizer, which :meth:`ModelSpec.from_entry`
    resolves."""

    name: str
    lr: float
    momentum: float
    weight_decay: float = schema.default("models.*.optimizer.weight_decay")

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZER_LR:
            raise ValueError(f"unknown optimizer {self.name!r}; valid: {', '.join(OPTIMIZER_LR)}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0, got {self.weight_decay}")


@dataclass(frozen=True)
class LossSpec:
    """Weights of binary cross-entropy and soft Dice in the training loss."""

    bce: float = schema.default("models.*.loss.bce")
    dice: float = schema.default("models.*.loss.dice")

    def __post_init__(self) -> None:
        if self.bce < 0 or self.dice < 0 or self.bce + self.dice == 0:
            raise ValueError(f"loss weights must be >= 0 and not both 0, got bce={self.bce} dice={self.dice}")


@dataclass(frozen=True)
class AugmentSpec:
    """Training augmentations; each ``*_p`` is the probability that the transform is applied.

    shift is a fraction of the side, scale a relative change, rotate in degrees; brightness and
    contrast relative; hue, saturation and value in OpenCV's 8-bit HSV units.
    """

    hflip_p: float = schema.default("models.*.augment.hflip_p")
    affine_p: float = schema.default("models.*.augment.affine_p")
    shift: float = schema.default("models.*.augment.shift")
    scale: float = schema.default("models.*.augment.scale")
    rotate: float = schema.default("models.*.augment.rotate")
    color_p: float = schema.default("models.*.augment.color_p")
    brightness: float = schema.default("models.*.augment.brightness")
    contrast: float = schema.default("models.*.augment.contrast")
    hue: int = schema.default("models.*.augment.hue")
    saturation: int = schema.default("models.*.augment.saturation")
    value: int = schema.default("models.*.augment.value")
    channel_shuffle_p: float = schema.default("models.*.augment.channel_shuffle_p")
    gray_p: float = schema.default("models.*.augment.gray_p")

    def __post_init__(self) -> None:
        for key in ("hflip_p", "affine_p", "color_p", "channel_shuffle_p", "gray_p"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"augment.{key} is a probability in [0, 1], got {getattr(self, key)}")
        for key in ("shift", "scale", "rotate", "brightness", "contrast", "hue", "saturation", "value"):
            if getattr(self, key) < 0:
                raise ValueError(f"augment.{key} must be >= 0, got {getattr(self, key)}")


@dataclass(frozen=True)
class ModelSpec:
    """One ensemble member. Sizes are (height, width).

    ``input_size``: the size images are resized to for the network. For ``unet`` the image is
    then covered by overlap tiles of ``tile_size`` (the network's input, each side 16k + 124);
    every other architecture takes the resized image whole, so its sides must divide evenly.
    ``width``: channel multiplier (1 = the reference). ``gpu``: GPUs per training job (0: CPU).
    ``threads``: CPU threads for the network; ``workers``: DataLoader processes (0: in-process);
    ``compile``: torch.compile the network in its training jobs (prediction's shards follow
    ``predict.compile``). These three say how a job runs, not what it learns: a checkpoint made
    under other values of them is resumed (:meth:`recipe_json`).
    ``validate_every``: score the held-out images every this many epochs (it divides ``epochs``,
    so that the last epoch is scored); the best of the scored epochs becomes weights.pt.
    ``steps_per_epoch``: at most this many batches per epoch (None: the whole training set), and
    as many batches of held-out images scored (the OOF job scores them all), for a quick run at
    full size that proves the sizes, not the learning.
    ``dropout``: unet only, the paper's dropout at the end of the contracting path; a config that
    leaves it out gets 0.5 at width 1 and none at a reduced width (:meth:`from_entry`).
    """

    name: str
    arch: str
    input_size: tuple[int, int]
    optimizer: OptimizerSpec
    dropout: float  # the schema's null depends on arch and width: from_entry resolves it
    tile_size: tuple[int, int] | None = schema.default("models.*.tile_size")
    encoder: str | None = schema.default("models.*.encoder")
    width: float = schema.default("models.*.width")
    pretrained: bool = schema.default("models.*.pretrained")
    epochs: int = schema.default("models.*.epochs")
    validate_every: int = schema.default("models.*.validate_every")
    steps_per_epoch: int | None = schema.default("models.*.steps_per_epoch")
    batch_size: int = schema.default("models.*.batch_size")
    scheduler: str = schema.default("models.*.scheduler")
    loss: LossSpec = field(default_factory=LossSpec)
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    precision: str = schema.default("models.*.precision")
    gpu: int = schema.default("models.*.gpu")
    threads: int = schema.default("models.*.threads")
    workers: int = schema.default("models.*.workers")
    compile: bool = schema.default("models.*.compile")
    seed: int = schema.default("models.*.seed")

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError(
                f"model name {self.name!r}: use letters, digits, '_' and '-', starting with a letter or digit"
            )
        info = arch_info(self.arch)
        where = f"model {self.name!r} ({self.arch})"
        if info is SMP_ARCH:
            if not self.encoder:
                raise ValueError(f"{where}: an smp architecture needs an encoder (e.g. encoder: resnet34)")
            if self.width != 1.0:
                raise ValueError(
                    f"{where}: width applies to unet, unet1024 and unet11 only; choose a smaller encoder"
                )
        elif self.encoder is not None:
            raise ValueError(f"{where}: only smp.* architectures take an encoder, got {self.encoder!r}")
        if self.dropout and self.arch != "unet":
            raise ValueError(f"{where}: dropout applies to unet only (the paper's); leave it out")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"{where}: dropout is a rate in [0, 1), got {self.dropout}")
        if self.pretrained and self.arch in ("unet", "unet1024"):
            raise ValueError(f"{where}: has no pretrained weights; set pretrained: false")
        if self.pretrained and self.width != 1.0:
            raise ValueError(f"{where}: pretrained weights need width 1, got {self.width}")
        if not self.width > 0:
            raise ValueError(f"{where}: width must be positive, got {self.width}")
        for key in ("epochs", "batch_size", "threads", "validate_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{where}: {key} must be at least 1, got {getattr(self, key)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"{where}: steps_per_epoch must be at least 1, got {self.steps_per_epoch}")
        if self.epochs % self.validate_every:
            raise ValueError(
                f"{where}: validate_every {self.validate_every} does not divide epochs {self.epochs}, so the "
                f"last epoch would not be scored; choose a divisor of {self.epochs}"
            )
        if self.gpu < 0 or self.workers < 0:
            raise ValueError(f"{where}: gpu and workers must be >= 0, got {self.gpu} and {self.workers}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"{where}: unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"{where}: unknown scheduler {self.scheduler!r}; valid: {', '.join(SCHEDULERS)}")
        self._check_sizes(info, where)

    def _check_sizes(self, info: Arch, where: str) -> None:
        if min(self.input_size) < 1:
            raise ValueError(f"{where}: input_size must be positive, got {list(self.input_size)}")
        if info.divisor is None:
            if self.tile_size is None:
                raise ValueError(
                    f"{where}: needs tile_size, the network's input (each side 16k + 124, e.g. 572)"
                )
            for side in self.tile_size:
                try:
                    unet_output_size(side)
                except ValueError:
                    raise ValueError(
                        f"{where}: tile_size {list(self.tile_size)} has a side of {side} that the unpadded "
                        f"UNet cannot take (16k + 124, k >= 4): {unet_nearest_sizes(side)}"
                    ) from None
            return
        if self.tile_size is not None:
            raise ValueError(f"{where}: only unet takes tile_size (it sees the whole resized image)")
        for side in self.input_size:
            if side % info.divisor:
                raise ValueError(
                    f"{where}: input_size {list(self.input_size)} has a side of {side}, not divisible by "
                    f"{info.divisor}: {nearest_multiples(side, info.divisor)}"
                )

    def at_scale(self, scale: float) -> ModelSpec:
        """This model with its input size times ``scale`` (a TTA scale): each side rounded to the
        nearest size the architecture takes (halves up), a multiple of its divisor; any side for
        unet's tiles."""
        if scale == 1:
            return self
        if not scale > 0:
            raise ValueError(f"a TTA scale must be positive, got {scale}")
        divisor = arch_info(self.arch).divisor or 1
        size = [max(divisor, int(side * scale / divisor + 0.5) * divisor) for side in self.input_size]
        return replace(self, input_size=(size[0], size[1]))

    @property
    def module(self) -> str:
        """The module that defines this model's network."""
        return arch_info(self.arch).module

    @property
    def border(self) -> int:
        """Pixels the network trims from each side of its input (0 for padded networks)."""
        return unet_border(self.tile_size[0]) if self.tile_size else 0

    @classmethod
    def from_entry(cls, name: str, entry: Mapping[str, Any]) -> ModelSpec:
        """Build from a config entry (a mapping as in config.yaml); missing keys take defaults."""
        entry = dict(entry)
        if "arch" not in entry or "input_size" not in entry:
            raise ValueError(f"model {name!r}: needs at least arch and input_size")
        known = set(cls.__dataclass_fields__) - {"name"}
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ValueError(f"model {name!r}: unknown keys {unknown}; valid: {', '.join(sorted(known))}")
        optimizer = {k: v for k, v in (entry.pop("optimizer", None) or {}).items() if v is not None}
        optimizer_name = optimizer.pop("name", None) or arch_info(entry["arch"]).optimizer
        optimizer.setdefault("lr", OPTIMIZER_LR.get(optimizer_name, 1e-4))  # an unknown name fails below
        optimizer.setdefault("momentum", 0.99 if optimizer_name == "sgd" else 0.0)  # the UNet paper's
        try:  # an unknown key (TypeError) or a bad value inside optimizer, loss or augment
            parts: dict[str, Any] = {
                "optimizer": OptimizerSpec(name=optimizer_name, **optimizer),
                "loss": LossSpec(**(entry.pop("loss", None) or {})),
                "augment": AugmentSpec(**(entry.pop("augment", None) or {})),
            }
        except (TypeError, ValueError) as error:
            raise ValueError(f"model {name!r}: {error}") from None
        tile_size = entry.pop("tile_size", None)
        if entry.get("dropout") is None:  # the paper's network at its width; none when thinned
            full_width = entry.get("width", schema.default("models.*.width")) == 1
            entry["dropout"] = PAPER_DROPOUT if entry["arch"] == "unet" and full_width else 0.0
        return cls(
            name=name,
            input_size=_size(entry.pop("input_size"), name, "input_size"),
            tile_size=_size(tile_size, name, "tile_size") if tile_size is not None else None,
            **parts,
            **entry,
        )

    def to_json(self) -> str:
        """The spec as one line of JSON, keys sorted: what a training job is given."""
        return json.dumps(asdict(self), sort_keys=True)

    def recipe_json(self) -> str:
        """``to_json`` without the keys that only say how a job runs (:data:`RUN_KEYS`): what a
        checkpoint's weights depend on."""
        data = asdict(self)
        for key in RUN_KEYS:
            del data[key]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        data = json.loads(text)
        return cls.from_entry(data.pop("name"), data)


def _size(value: Any, name: str, key: str) -> tuple[int, int]:
    if not (isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        raise ValueError(f"model {name!r}: {key} is [height, width] in pixels, got {value!r}")
    return (int(value[0]), int(value[1]))


def model_specs(models: Mapping[str, Mapping[str, Any]]) -> list[ModelSpec]:
    """Every configured model, checked; ValueError for an empty list or a bad entry."""
    if not models:
        raise ValueError("models is empty: configure at least one model (see config.yaml)")
    return [ModelSpec.from_entry(name, entry) for name, entry in models.items()]
