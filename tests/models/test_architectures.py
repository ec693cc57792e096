"""The three required architectures against the published structures (DESIGN.md's figures)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from carvana.models.geometry import unet_border as border
from carvana.models.geometry import unet_output_size as output_size
from carvana.models.pretrained import VGG11, TorchvisionFile
from carvana.models.unet import UNet
from carvana.models.unet11 import UNet11
from carvana.models.unet1024 import UNet1024, scaled


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (UNet, 31_043_521),  # widths 64..1024, conv biases and BN, 1 output channel
        (UNet1024, 35_371_873),
        (UNet11, 22_927_393),  # num_filters = 32
    ],
    ids=["unet", "unet1024", "unet11"],
)
def test_parameter_count_equals_the_reference(build: type[nn.Module], expected: int) -> None:
    assert n_parameters(build()) == expected


def test_unet_width_multiplier_scales_parameters_about_quadratically() -> None:
    # halving every width divides conv weights by about 4 (biases and BN by 2)
    full, half = n_parameters(UNet(width=64)), n_parameters(UNet(width=32))
    assert 3.9 < full / half < 4.0


def test_unet_at_the_papers_size_maps_572_to_388() -> None:
    assert output_size(572) == 388
    assert border(572) == 92


@torch.no_grad()
def test_unet_output_on_a_non_square_input() -> None:
    # sides 16k + 124: 188 -> 4, 204 -> 20 (each side loses 2 * 92 = 184 pixels)
    model = UNet(width=4).eval()
    assert model(torch.zeros(1, 3, 188, 204)).shape == (1, 1, 4, 20)
    assert output_size(188) == 4 and output_size(204) == 20


@pytest.mark.parametrize(("side", "message"), [(570, "556 and 572"), (100, "smallest valid side is 188")])
def test_unet_rejects_a_side_it_cannot_take_naming_the_nearest(side: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"cannot take an input side of {side}: .*{message}"):
        output_size(side)


@torch.no_grad()
@pytest.mark.parametrize(
    ("build", "shape"),
    [(UNet1024, (64, 128)), (UNet11, (64, 96))],
    ids=["unet1024", "unet11"],
)
def test_padded_networks_keep_a_non_square_input_size(build: type[nn.Module], shape: tuple[int, int]) -> None:
    model = build().eval()
    assert model(torch.zeros(2, 3, *shape)).shape == (2, 1, *shape)


def test_unet11_encoder_is_vgg11_features() -> None:
    model, vgg = UNet11(), torchvision.models.vgg11(weights=None).features
    for index, mine in zip(
        (0, 3, 6, 8, 11, 13, 16, 18),
        (
            model.conv1[0],
            model.conv2[0],
            model.conv3[0],
            model.conv3[2],
            model.conv4[0],
            model.conv4[2],
            model.conv5[0],
            model.conv5[2],
        ),
        strict=True,
    ):
        assert mine.weight.shape == vgg[index].weight.shape


def test_unet11_pretrained_without_the_file_says_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "vgg11-8a719046.pth"
    with pytest.raises(FileNotFoundError, match=f"not found at {expected}: the workflow fetches them"):
        UNet11(pretrained=True)


def test_unet11_pretrained_refuses_a_damaged_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    VGG11.path.parent.mkdir(parents=True)
    VGG11.path.write_bytes(b"half a download")
    with pytest.raises(ValueError, match="is damaged: its sha256 does not begin 8a719046 as its name says"):
        UNet11(pretrained=True)


def test_unet11_pretrained_loads_the_cached_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    reference = torchvision.models.vgg11(weights=None)
    saved = tmp_path / "vgg11.pth"
    torch.save(reference.state_dict(), saved)
    # the file under the name torchvision would give it: its own sha256 prefix
    named = TorchvisionFile(f"vgg11-{hashlib.sha256(saved.read_bytes()).hexdigest()[:8]}.pth")
    named.path.parent.mkdir(parents=True)
    saved.rename(named.path)
    monkeypatch.setattr("carvana.models.unet11.VGG11", named)
    torch.manual_seed(1)  # a different initialisation, so a match can only come from the file
    model = UNet11(pretrained=True)
    assert torch.equal(model.conv1[0].weight, reference.features[0].weight)
    assert torch.equal(model.conv5[2].bias, reference.features[18].bias)


@pytest.mark.parametrize(
    ("build", "side"),
    [(lambda: UNet(width=4), 188), (UNet1024, 64), (UNet11, 64)],
    ids=["unet", "unet1024", "unet11"],
)
def test_one_optimisation_step_lowers_the_loss(build, side: int) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build().train()
    images = torch.rand(2, 3, side, side)
    out_side = output_size(side) if isinstance(model, UNet) else side
    target = torch.zeros(2, 1, out_side, out_side)
    target[..., out_side // 4 : 3 * out_side // 4, :] = 1
    assert 0 < target.mean() < 1
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    first = loss_fn(model(images), target)
    first.backward()
    optimiser.step()
    with torch.no_grad():
        second = loss_fn(model(images), target)
    assert second < first


@torch.no_grad()
@pytest.mark.parametrize(
    ("build", "full"), [(UNet1024, 35_371_873), (UNet11, 22_927_393)], ids=["unet1024", "unet11"]
)
def test_a_width_multiplier_shrinks_the_network_and_keeps_its_geometry(
    build: type[nn.Module], full: int
) -> None:
    small = build(width=0.25)  # type: ignore[call-arg]
    # every channel count quartered: convolution weights shrink about 16x
    assert 12 < full / n_parameters(small) < 17
    assert small.eval()(torch.zeros(1, 3, 64, 128)).shape == (1, 1, 64, 128)


def test_unet11_refuses_a_width_that_breaks_its_skips_or_its_weights() -> None:
    with pytest.raises(ValueError, match="multiple of 1/32"):
        UNet11(width=0.3)
    with pytest.raises(ValueError, match="ImageNet weights exist for VGG11 at width 1 only"):
        UNet11(width=0.5, pretrained=True)


def test_a_thin_unet1024_keeps_eight_channels_at_full_resolution() -> None:
    # width 0.125 of (24, 64, 128, 256, 512, 768) is (3, 8, 16, 32, 64, 96): the first stage is
    # floored at 8; the decoder (512, 256, 128, 64, 24, 24) becomes (64, 32, 16, 8, 8, 8)
    network = UNet1024(width=0.125)
    encoder = [stage[1][0].out_channels for stage in network.down]
    decoder = [stage[2][0].out_channels for stage in network.up]
    assert encoder == [8, 8, 16, 32, 64, 96]
    assert decoder == [64, 32, 16, 8, 8, 8]
    assert network.head.in_channels == 8
    assert scaled((24, 4), 0.125) == [8, 4]  # never above the reference's own count


def test_unet1024_batchnorm_epsilon_is_the_references() -> None:
    norms = [module for module in UNet1024(width=0.125).modules() if isinstance(module, nn.BatchNorm2d)]
    assert len(norms) == 6 * 2 + 1 + 6 * 3  # encoder, centre, decoder
    assert {norm.eps for norm in norms} == {1e-4}


def test_unet_drops_half_of_the_last_two_contracting_stages_outputs_in_training_only() -> None:
    model = UNet(width=4, dropout=0.5)  # stages of 4, 8, 16, 32, 64 channels
    seen: list[tuple[int, float]] = []  # (channels, share of the nonzero inputs that were zeroed)

    def record(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        alive = inputs[0] != 0
        seen.append((output.shape[1], float((output[alive] == 0).float().mean())))

    model.dropout.register_forward_hook(record)
    torch.manual_seed(0)
    image = torch.rand(2, 3, 188, 188)
    model.train()(image)
    assert [channels for channels, _ in seen] == [32, 64]
    assert all(0.45 < share < 0.55 for _, share in seen), seen
    seen.clear()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(image), model(image))
    assert all(share == 0 for _, share in seen)


def test_unet_without_dropout_has_no_dropout_layer() -> None:
    assert not any(isinstance(module, nn.Dropout) for module in UNet(width=4).modules())
    with pytest.raises(ValueError, match=r"dropout is a rate in \[0, 1\), got 1.0"):
        UNet(width=4, dropout=1.0)
