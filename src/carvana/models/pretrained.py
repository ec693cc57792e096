"""ImageNet weights that configured models start from, fetched once, before any training job.

Each file is fetched by its library's own download, with that download's hash check, into the
cache the library reads it from, so a training job finds it there with the network cut:

- torchvision's files (VGG11 for ``unet11``): ``torch.hub.download_url_to_file``, which checks
  the sha256 prefix the file's name carries (``vgg11-8a719046.pth``), into
  ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``);
- smp encoders: the Hugging Face hub's ``hf_hub_download``, at the revision smp pins, into the
  hub's cache (``$HF_HOME/hub``). The hub itself only checks the size; its cache names a large
  file by its sha256, which is checked here as well.

A file already in its cache whose hash checks out is kept and nothing is downloaded. A base URL
(``pretrained_weights.base_url``) or hub endpoint (``pretrained_weights.hf_endpoint``) points at
a mirror on a cluster without the internet. A failed fetch raises :class:`PretrainedError`
naming the file, the URL and where to put the file by hand.

Imports neither torch nor smp at module level: the workflow reads the paths when it starts.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from carvana import schema
from carvana.models.spec import SMP_ARCH, ModelSpec, arch_info

TORCHVISION_URL = "https://download.pytorch.org/models"
HUB_ENDPOINT = "https://huggingface.co"
VGG11_FILE = "vgg11-8a719046.pth"  # torchvision's VGG11_Weights.IMAGENET1K_V1
HUB_FILES = ("config.json", "model.safetensors")  # what smp reads of an encoder's repository
HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # as torch.hub reads a file's hash prefix
SHA256 = re.compile(r"[a-f0-9]{64}")
STALL_S = 120  # seconds without a byte from the server before a download gives up


class PretrainedError(RuntimeError):
    """A pretrained weight file could not be fetched or is damaged; the message says what to do."""


@dataclass(frozen=True)
class WeightSource:
    """Where files come from: None takes the library's own address (for the hub, ``HF_ENDPOINT``
    when set)."""

    base_url: str | None = schema.default("pretrained_weights.base_url")
    hf_endpoint: str | None = schema.default("pretrained_weights.hf_endpoint")

    @property
    def torchvision_url(self) -> str:
        return (self.base_url or TORCHVISION_URL).rstrip("/")

    @property
    def hub_endpoint(self) -> str:
        return (self.hf_endpoint or os.environ.get("HF_ENDPOINT") or HUB_ENDPOINT).rstrip("/")


class PretrainedFile(Protocol):
    """One file of pretrained weights: its key (names the workflow's rule and the CLI's
    ``--weights``), the path a training job reads, and its fetch."""

    @property
    def key(self) -> str: ...

    @property
    def path(self) -> Path: ...

    def fetch(self, source: WeightSource) -> str: ...


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch: ``$TORCH_HOME/hub``, where TORCH_HOME
    defaults to ``$XDG_CACHE_HOME/torch`` and XDG_CACHE_HOME to ``~/.cache``."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache"))
    return Path(os.environ.get("TORCH_HOME", cache / "torch")).expanduser() / "hub"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TorchvisionFile:
    """A file of torchvision's model zoo, named ``<name>-<sha256 prefix>.<ext>``."""

    file_name: str

    def __post_init__(self) -> None:
        self.hash_prefix  # noqa: B018 (raises for a name without one)

    @property
    def key(self) -> str:
        return self.file_name.split("-", 1)[0]

    @property
    def hash_prefix(self) -> str:
        found = HASH_IN_NAME.search(self.file_name)
        if found is None:
            raise ValueError(f"{self.file_name!r} carries no hash prefix (<name>-<hex>.<ext>)")
        return found.group(1)

    @property
    def path(self) -> Path:
        return torch_hub_dir() / "checkpoints" / self.file_name

    def url(self, source: WeightSource) -> str:
        return f"{source.torchvision_url}/{self.file_name}"

    def verified(self) -> bool:
        """Whether the cached file's sha256 begins with the prefix in its name."""
        return self.path.is_file() and sha256_of(self.path).startswith(self.hash_prefix)

    def fetch(self, source: WeightSource) -> str:
        """Download unless the cached file verifies; return what was done."""
        if self.path.is_file():
            if self.verified():
                return f"{self.path}: cached, sha256 begins {self.hash_prefix} as its name says; kept"
            print(f"{self.path}: its sha256 does not begin {self.hash_prefix}: damaged, removed")
            self.path.unlink()
        from urllib.error import URLError

        from torch.hub import download_url_to_file

        url = self.url(source)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        print(f"fetching {self.file_name} from {url}", flush=True)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(STALL_S)  # torch.hub's urlopen has none: a stalled server would hang
        try:  # into a temporary file beside the target, renamed once its hash checks out
            download_url_to_file(url, str(self.path), hash_prefix=self.hash_prefix, progress=True)
        except RuntimeError as error:
            if "invalid hash value" not in str(error):
                raise
            raise PretrainedError(
                f"{self.file_name} from {url} is damaged ({error}); nothing was written. Fetch it again; "
                f"if the server keeps sending it so, {self._by_hand(url)}"
            ) from None
        except (URLError, OSError, ValueError) as error:  # ValueError: a malformed URL
            reason = getattr(error, "reason", None) or error
            raise PretrainedError(
                f"cannot fetch {self.file_name} from {url} ({reason}): {self._by_hand(url)}"
            ) from None
        finally:
            socket.setdefaulttimeout(previous)
        return f"{self.path}: fetched from {url}, sha256 begins {self.hash_prefix}"

    def _by_hand(self, url: str) -> str:
        return (
            f"download {url} on a machine that reaches it and put the file at {self.path} (or set "
            "TORCH_HOME to a folder whose hub/checkpoints/ holds it, or pretrained_weights.base_url "
            "to a mirror that serves it); then rerun"
        )


def hub_cache_dir() -> Path:
    """The Hugging Face hub's cache folder (``HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


@dataclass(frozen=True)
class HubFile:
    """An smp encoder's weights: ``config.json`` and ``model.safetensors`` of a hub repository at
    the revision (a commit) smp pins."""

    encoder: str
    repo_id: str
    revision: str

    @property
    def key(self) -> str:
        return f"smp-{self.encoder}"

    @property
    def snapshot_dir(self) -> Path:
        return hub_cache_dir() / f"models--{self.repo_id.replace('/', '--')}" / "snapshots" / self.revision

    @property
    def path(self) -> Path:
        return self.snapshot_dir / HUB_FILES[-1]

    def url(self, source: WeightSource, file_name: str) -> str:
        return f"{source.hub_endpoint}/{self.repo_id}/resolve/{self.revision}/{file_name}"

    def link_target(self, file_name: str) -> Path | None:
        """The blob the cache's snapshot entry links to (``blobs/<etag>``, one link deep: that blob
        may itself link into a store other repositories share); None for a file placed by hand."""
        path = self.snapshot_dir / file_name
        return path.parent / path.readlink() if path.is_symlink() else None

    def damage(self, file_name: str) -> str | None:
        """Why the cached ``file_name`` is damaged, or None. The hub names a large file's blob by its
        sha256, which must match; a small file's blob by its git hash, and a file placed by hand
        not at all, so those pass as they are."""
        blob = self.link_target(file_name)
        if blob is None or not SHA256.fullmatch(blob.name):
            return None
        if sha256_of(self.snapshot_dir / file_name) != blob.name:
            return f"its sha256 is not {blob.name}, the hash the hub gave it"
        return None

    def problems(self) -> dict[str, str]:
        """Each of the encoder's files that is missing from the cache or damaged, with why."""
        found = {}
        for name in HUB_FILES:
            if not (self.snapshot_dir / name).is_file():
                found[name] = "not in the cache"
            elif damage := self.damage(name):
                found[name] = damage
        return found

    def fetch(self, source: WeightSource) -> str:
        """Download what is missing or damaged; return what was done."""
        problems = self.problems()
        if not problems:
            return f"{self.path}: cached (revision {self.revision[:12]}), hash checked; kept"
        from huggingface_hub import hf_hub_download

        for name, problem in problems.items():
            url = self.url(source, name)
            print(f"{self.snapshot_dir / name}: {problem}: fetching it from {url}", flush=True)
            self._remove(name)
            try:
                hf_hub_download(self.repo_id, name, revision=self.revision, endpoint=source.hub_endpoint)
            except Exception as error:  # the hub's errors: offline, HTTP, missing repository or file
                raise PretrainedError(
                    f"cannot fetch {name} of the smp encoder {self.encoder!r} from {url} "
                    f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}): "
                    f"{self._by_hand(source)}"
                ) from None
            damage = self.damage(name)
            if damage is not None:
                self._remove(name)
                raise PretrainedError(
                    f"{name} of the smp encoder {self.encoder!r} from {url} arrived damaged ({damage}) "
                    f"and was removed. Fetch it again; if it keeps arriving so, {self._by_hand(source)}"
                )
        return (
            f"{self.path}: fetched from {source.hub_endpoint} (revision {self.revision[:12]}), hash checked"
        )

    def _remove(self, name: str) -> None:
        """The snapshot's entry and the blob it names; never a shared store the blob links to."""
        blob = self.link_target(name)
        (self.snapshot_dir / name).unlink(missing_ok=True)
        if blob is not None:
            blob.unlink(missing_ok=True)

    def _by_hand(self, source: WeightSource) -> str:
        files = " and ".join(self.url(source, name) for name in HUB_FILES)
        return (
            f"download {files} on a machine that reaches them and put both files in {self.snapshot_dir} "
            "(or set HF_HOME to a copied hub cache, or pretrained_weights.hf_endpoint to a mirror of "
            "the hub); then rerun"
        )


VGG11 = TorchvisionFile(VGG11_FILE)


def hub_file(encoder: str) -> HubFile:
    """The ImageNet weights smp pins for ``encoder``; ValueError when smp has none to fetch."""
    from segmentation_models_pytorch.encoders import encoders

    if encoder not in encoders:  # timm's (tu-*) included: timm fetches those itself
        raise ValueError(f"unknown smp encoder {encoder!r}; valid: {', '.join(encoders)}")
    settings = encoders[encoder]["pretrained_settings"]
    if "imagenet" not in settings:
        raise ValueError(
            f"the smp encoder {encoder!r} has no ImageNet weights (it has: {', '.join(settings) or 'none'}); "
            "choose another encoder or set pretrained: false"
        )
    return HubFile(encoder, settings["imagenet"]["repo_id"], settings["imagenet"]["revision"])


def file_of_key(key: str) -> PretrainedFile:
    """The file a key names: ``vgg11``, or ``smp-<encoder>``; ValueError listing the forms."""
    if key == VGG11.key:
        return VGG11
    if key.startswith("smp-"):
        return hub_file(key.removeprefix("smp-"))
    raise ValueError(
        f"unknown pretrained weights {key!r}; valid: {VGG11.key}, smp-<encoder> (e.g. smp-resnet34)"
    )


def pretrained_files(spec: ModelSpec) -> list[PretrainedFile]:
    """The files ``spec``'s network starts from (none unless ``pretrained: true``)."""
    if not spec.pretrained:
        return []
    if spec.arch == "unet11":
        return [VGG11]
    if arch_info(spec.arch) is SMP_ARCH and spec.encoder:
        return [hub_file(spec.encoder)]
    raise ValueError(f"model {spec.name!r} ({spec.arch}) has no pretrained weights")


def files_by_key(specs: list[ModelSpec]) -> dict[str, PretrainedFile]:
    """Every file the models need, once each, by key."""
    return {file.key: file for spec in specs for file in pretrained_files(spec)}
