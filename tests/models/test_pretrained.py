"""Pretrained weights fetched from a loopback server into the libraries' caches, hash-checked."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest
import torch
import torchvision

from carvana.cli import main
from carvana.models.pretrained import (
    VGG11,
    HubFile,
    PretrainedError,
    TorchvisionFile,
    WeightSource,
    file_of_key,
    hub_file,
    pretrained_files,
    torch_hub_dir,
)
from carvana.models.spec import ModelSpec
from weights_server import WeightsServer

DATA = b"not really weights, " * 500  # 10,000 bytes
PREFIX = hashlib.sha256(DATA).hexdigest()[:8]
REVISION = "0123456789abcdef0123456789abcdef01234567"
HUB = HubFile("tiny", "smp-hub/tiny.imagenet", REVISION)
HUB_CONFIG = b'{"name": "tiny"}'


@pytest.fixture(autouse=True)
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty torch and Hugging Face caches of the test's own."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path


def closed_port_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def hub_files(data: bytes = DATA) -> dict[str, bytes]:
    base = f"/{HUB.repo_id}/resolve/{REVISION}"
    return {f"{base}/config.json": HUB_CONFIG, f"{base}/model.safetensors": data}


@pytest.mark.parametrize(
    "environ",
    [{"TORCH_HOME": "/opt/torch"}, {"XDG_CACHE_HOME": "/var/cache"}, {"HOME": "/home/someone"}],
    ids=["TORCH_HOME", "XDG_CACHE_HOME", "HOME"],
)
def test_the_torch_cache_is_where_torch_looks(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert torch_hub_dir() == Path(torch.hub.get_dir())
    assert str(torch_hub_dir()).startswith(next(iter(environ.values())))


def test_vgg11_is_torchvisions_imagenet_file() -> None:
    url = torchvision.models.VGG11_Weights.IMAGENET1K_V1.url
    assert VGG11.url(WeightSource()) == url == "https://download.pytorch.org/models/vgg11-8a719046.pth"
    assert VGG11.hash_prefix == "8a719046"
    assert VGG11.path == Path(torch.hub.get_dir()) / "checkpoints" / "vgg11-8a719046.pth"


def test_a_file_is_fetched_into_the_torch_cache_once(caches: Path) -> None:
    weights = TorchvisionFile(f"tiny-{PREFIX}.pth")
    with WeightsServer({f"/mirror/{weights.file_name}": DATA}) as server:
        source = WeightSource(base_url=f"{server.url}/mirror/")
        first = weights.fetch(source)
        second = weights.fetch(source)
        assert server.downloads() == [f"/mirror/{weights.file_name}"]  # the second fetch sent nothing
    assert weights.path == caches / "torch/hub/checkpoints" / weights.file_name
    assert weights.path.read_bytes() == DATA
    assert "fetched from" in first and "kept" in second


def test_a_damaged_download_is_refused_and_nothing_is_written() -> None:
    weights = TorchvisionFile(f"tiny-{PREFIX}.pth")
    damaged = DATA[:-1] + b"?"  # one byte off
    with (
        WeightsServer({f"/{weights.file_name}": damaged}) as server,
        pytest.raises(PretrainedError) as raised,
    ):
        weights.fetch(WeightSource(base_url=server.url))
    assert f"tiny-{PREFIX}.pth from {server.url}/tiny-{PREFIX}.pth is damaged" in str(raised.value)
    assert list(weights.path.parent.iterdir()) == []  # no file, no partial download


def test_a_damaged_cached_file_is_fetched_again() -> None:
    weights = TorchvisionFile(f"tiny-{PREFIX}.pth")
    weights.path.parent.mkdir(parents=True)
    weights.path.write_bytes(DATA[: len(DATA) // 2])  # a download cut short by hand
    with WeightsServer({f"/{weights.file_name}": DATA}) as server:
        weights.fetch(WeightSource(base_url=server.url))
        assert len(server.downloads()) == 1
    assert weights.path.read_bytes() == DATA


def test_an_unreachable_server_names_the_file_the_url_and_where_to_put_it() -> None:
    url = closed_port_url()
    with pytest.raises(PretrainedError) as raised:
        VGG11.fetch(WeightSource(base_url=url))
    message = str(raised.value)
    assert f"cannot fetch vgg11-8a719046.pth from {url}/vgg11-8a719046.pth" in message
    assert f"put the file at {VGG11.path}" in message
    assert "pretrained_weights.base_url" in message


def test_the_cli_refuses_a_vgg11_file_whose_hash_is_not_its_names(capsys: pytest.CaptureFixture[str]) -> None:
    with WeightsServer({"/vgg11-8a719046.pth": DATA}) as server:  # a mirror holding the wrong bytes
        assert main(["fetch-weights", "--weights", "vgg11", "--base-url", server.url]) == 1
    error = capsys.readouterr().err
    assert "vgg11-8a719046.pth" in error and "is damaged" in error and 'expected "8a719046"' in error
    assert not VGG11.path.exists()


def test_hub_weights_are_fetched_into_the_hub_cache_once(caches: Path) -> None:
    with WeightsServer(hub_files()) as server:
        source = WeightSource(hf_endpoint=server.url)
        HUB.fetch(source)
        assert "kept" in HUB.fetch(source)
        assert sorted(server.downloads()) == sorted(hub_files())
    snapshot = caches / "hf/models--smp-hub--tiny.imagenet/snapshots" / REVISION
    assert HUB.path == snapshot / "model.safetensors"
    assert HUB.path.read_bytes() == DATA
    assert (snapshot / "config.json").read_bytes() == HUB_CONFIG
    assert HUB.path.resolve().name == hashlib.sha256(DATA).hexdigest()  # the blob named by its hash


def test_hub_weights_that_do_not_match_their_hash_are_removed() -> None:
    path = f"/{HUB.repo_id}/resolve/{REVISION}/model.safetensors"
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with WeightsServer(hub_files(), etags={path: wrong}) as server, pytest.raises(PretrainedError) as raised:
        HUB.fetch(WeightSource(hf_endpoint=server.url))
    assert f"model.safetensors of the smp encoder 'tiny' from {server.url}{path} arrived damaged" in str(
        raised.value
    )
    assert not HUB.path.exists() and not (HUB.path.parents[2] / "blobs" / wrong).exists()


def test_an_unreachable_hub_names_the_file_the_url_and_where_to_put_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("huggingface_hub.utils._http.time.sleep", lambda seconds: None)  # its retries' waits
    url = closed_port_url()
    with pytest.raises(PretrainedError) as raised:
        HUB.fetch(WeightSource(hf_endpoint=url))
    message = str(raised.value)
    assert f"cannot fetch config.json of the smp encoder 'tiny' from {url}/{HUB.repo_id}/resolve/" in message
    assert f"put both files in {HUB.snapshot_dir}" in message
    assert f"{url}/{HUB.repo_id}/resolve/{REVISION}/model.safetensors" in message


def xet_style_cache(data: bytes) -> tuple[Path, Path]:
    """The hub's cache as hf_xet lays it out: snapshot -> blobs/<sha256> -> a shared store file.
    Returns (the sha256-named blob link, the store file)."""
    sha = hashlib.sha256(data).hexdigest()
    blobs = HUB.snapshot_dir.parents[1] / "blobs"
    store = blobs / "ab" / ("c" * 64)  # named by the Xet hash, not the sha256
    store.parent.mkdir(parents=True)
    store.write_bytes(data)
    (blobs / sha).symlink_to(Path("ab") / store.name)
    HUB.snapshot_dir.mkdir(parents=True)
    (HUB.snapshot_dir / "model.safetensors").symlink_to(Path("../../blobs") / sha)
    (HUB.snapshot_dir / "config.json").write_bytes(HUB_CONFIG)
    return blobs / sha, store


def test_a_blob_in_a_shared_store_is_checked_by_the_hash_its_link_names() -> None:
    xet_style_cache(DATA)
    assert HUB.problems() == {}
    assert "kept" in HUB.fetch(WeightSource(hf_endpoint=closed_port_url()))  # nothing to fetch


def test_a_damaged_cached_hub_file_is_removed_and_fetched_again_sparing_the_shared_store() -> None:
    blob, store = xet_style_cache(DATA)
    assert blob.is_symlink() and blob.resolve() == store
    store.write_bytes(DATA[:-1] + b"?")  # damaged after its download
    assert "model.safetensors" in HUB.problems()
    with WeightsServer(hub_files()) as server:
        HUB.fetch(WeightSource(hf_endpoint=server.url))
        assert server.downloads() == [f"/{HUB.repo_id}/resolve/{REVISION}/model.safetensors"]
    assert HUB.path.read_bytes() == DATA and HUB.problems() == {}
    assert store.is_file()  # another repository's link into the store stays whole


def test_hub_endpoint_defaults_to_hf_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WeightSource().hub_endpoint == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.org/")
    assert WeightSource().hub_endpoint == "https://hub.example.org"
    assert WeightSource(hf_endpoint="http://mirror:8080").hub_endpoint == "http://mirror:8080"


def test_smp_encoders_resolve_to_the_revision_smp_pins() -> None:
    resnet34 = hub_file("resnet34")
    assert (resnet34.repo_id, resnet34.revision) == (
        "smp-hub/resnet34.imagenet",
        "7a57b34f723329ff020b3f8bc41771163c519d0c",  # smp 0.6's pin
    )
    assert file_of_key("smp-resnet34") == resnet34 and file_of_key("vgg11") == VGG11
    with pytest.raises(ValueError, match="unknown smp encoder 'tu-resnet34'"):
        hub_file("tu-resnet34")
    with pytest.raises(ValueError, match="unknown pretrained weights 'vgg16'; valid: vgg11, smp-<encoder>"):
        file_of_key("vgg16")


def test_only_pretrained_models_need_files() -> None:
    def spec(**entry: object) -> ModelSpec:
        return ModelSpec.from_entry("m", {"input_size": [64, 64], **entry})

    assert pretrained_files(spec(arch="unet11", pretrained=True)) == [VGG11]
    assert pretrained_files(spec(arch="unet11")) == []
    assert pretrained_files(spec(arch="smp.Unet", encoder="resnet18", pretrained=True)) == [
        hub_file("resnet18")
    ]


def test_fetch_weights_from_a_config_file_takes_its_mirror(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "competition.yaml"
    unet11 = {"arch": "unet11", "input_size": [64, 64], "pretrained": True}
    with WeightsServer({"/vgg11-8a719046.pth": DATA}) as server:  # a mirror with the wrong bytes
        config.write_text(
            json.dumps({"pretrained_weights": {"base_url": server.url}, "models": {"u": unet11}})
        )
        assert main(["fetch-weights", "--config-file", str(config)]) == 1
        assert server.downloads() == ["/vgg11-8a719046.pth"]
    assert f"vgg11-8a719046.pth from {server.url}/vgg11-8a719046.pth is damaged" in capsys.readouterr().err


def test_fetch_weights_from_a_config_file_fetches_what_its_models_ask_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"models": {"plain": {"arch": "unet1024", "input_size": [64, 64]}}}))
    assert main(["fetch-weights", "--config-file", str(config)]) == 0
    assert "no model in" in capsys.readouterr().out


def test_an_smp_encoder_starts_from_the_cached_weights_with_the_hub_offline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import huggingface_hub
    import segmentation_models_pytorch as smp
    from safetensors.torch import save_file

    from carvana.models.build import build_model

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    spec = ModelSpec.from_entry(
        "m", {"arch": "smp.Unet", "encoder": "mobilenet_v2", "pretrained": True, "input_size": [64, 64]}
    )
    cached = hub_file("mobilenet_v2")
    with pytest.raises(
        FileNotFoundError, match=r"config\.json: not in the cache; model\.safetensors: not in"
    ):
        build_model(spec)
    assert huggingface_hub.constants.HF_HUB_OFFLINE  # a training job never waits on the network

    torch.manual_seed(3)
    state = smp.encoders.get_encoder("mobilenet_v2", weights=None).state_dict()
    cached.snapshot_dir.mkdir(parents=True)
    save_file(state, str(cached.path))  # placed by hand: a plain file, as the error says to
    (cached.snapshot_dir / "config.json").write_text("{}")
    network = build_model(spec)
    assert all(torch.equal(network.encoder.state_dict()[key], value) for key, value in state.items())
