"""The ensemble: a member read from its weights.pt and made ready for inference; the prepared
inputs (members that take the same input size but not the same input, the unpadded UNet's
mirror-padded tiles against a whole image, each get their own; a large image halved once for every
size); the finished maps; pinning a prepared batch."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import torch
import yaml
from torch import nn

from carvana.models.build import build_model
from carvana.models.spec import ModelSpec
from carvana.prediction import ensemble as ensemble_module
from carvana.prediction.ensemble import Ensemble, Member, Prepared, load_member, read_member
from carvana.prediction.tta import TTASpec

# ImageNet's mean and standard deviation per RGB channel, in 8-bit units: what the networks see
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406]) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225]) * 255

# A tile of 204 = 16 * 5 + 124 gives an output of 20 (each stage's two 3x3 convolutions take 4:
# 204 -> 200, halved 100 -> 96, 48 -> 44, 22 -> 18, 9 -> 5, then doubled and less 4: 6, 8, 12, 20),
# a border of (204 - 20) / 2 = 92 pixels a side.
# Tiles of 204 x 252 give outputs of 20 x 68: over a 32 x 64 image, two rows of tiles (starting
# at 0 and 12, overlapping) by one column, which covers 68 columns, so the image is mirrored
# 92 pixels outward on each side plus 4 more on the right: 216 x 252.
BORDER = 92
PADDED = (32 + 2 * BORDER, 64 + 2 * BORDER + 4)


class CentreRedPlusOne(nn.Module):
    """An unpadded "network": a tile's centre, border trimmed, of its first channel, plus 1."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs[:, :1, BORDER:-BORDER, BORDER:-BORDER] + 1


class MinusGreen(nn.Module):
    """A padded "network": minus its input's second channel, less 0.5, at every pixel."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return -inputs[:, 1:2] - 0.5


def normalised(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """(H, W, 3) uint8 -> (3, H, W), ImageNet-normalised."""
    return ((image - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def sigmoid(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1 / (1 + np.exp(-logits))


@pytest.mark.parametrize("unet_first", [True, False])
def test_a_tiled_and_a_whole_image_member_at_one_input_size_each_get_their_own_inputs(
    unet_first: bool,
) -> None:
    unet = Member(
        ModelSpec.from_entry("u", {"arch": "unet", "input_size": [32, 64], "tile_size": [204, 252]}),
        0,
        CentreRedPlusOne(),
    )
    whole = Member(ModelSpec.from_entry("w", {"arch": "unet11", "input_size": [32, 64]}), 0, MinusGreen())
    members = [unet, whole] if unet_first else [whole, unet]
    ensemble = Ensemble(members, TTASpec(hflip=True), torch.device("cpu"), None)
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (32, 64, 3), dtype=np.uint8) for _ in range(2)]

    prepared = ensemble.prepare(images)
    assert len(prepared.inputs) == 2
    padded = prepared.inputs[ensemble.inputs_key(unet.spec)].numpy()
    plain = prepared.inputs[ensemble.inputs_key(whole.spec)].numpy()
    assert padded.shape == (2 * 2, 3, *PADDED)  # two views (identity, hflip) of two images, view-major
    assert plain.shape == (2 * 2, 3, 32, 64)
    for number, image in enumerate(images):  # the identity view of each image
        assert np.allclose(plain[number], normalised(image), atol=1e-5)
        assert np.allclose(padded[number, :, BORDER : BORDER + 32, BORDER : BORDER + 64], plain[number])
        # the mirror repeats the edge pixel: the row above the image is its first row
        assert np.array_equal(padded[number, :, BORDER - 1, BORDER : BORDER + 64], plain[number, :, 0])

    # both "networks" act on each pixel alone, so the flip views agree and the map is each image's
    # mean of sigmoid(red + 1) and sigmoid(-green - 0.5)
    got = ensemble.probabilities(images)
    for image, probability in zip(images, got, strict=True):
        red, green, _ = normalised(image)
        expected = (sigmoid(red + 1) + sigmoid(-green - 0.5)) / 2
        assert probability.shape == (32, 64)
        assert np.allclose(probability, expected, atol=1e-5)


class NeverCalled(nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        raise AssertionError("a member of weight 0 ran a forward pass")


def test_members_blend_by_weight_and_a_member_of_weight_0_runs_no_forward_pass() -> None:
    """Weights 3 and 1 (and 0): the map is (3 sigmoid(-green - 0.5) + sigmoid(red + 1)) / 4, and the
    weight-0 member, whose network raises if called, takes no forward pass nor an input."""
    tiled = Member(
        ModelSpec.from_entry("u", {"arch": "unet", "input_size": [32, 64], "tile_size": [204, 252]}),
        0,
        CentreRedPlusOne(),
    )
    whole = Member(ModelSpec.from_entry("w", {"arch": "unet11", "input_size": [32, 64]}), 0, MinusGreen())
    idle = Member(ModelSpec.from_entry("z", {"arch": "unet1024", "input_size": [64, 64]}), 0, NeverCalled())
    weights = {"u": 1.0, "w": 3.0, "z": 0.0}
    ensemble = Ensemble([idle, tiled, whole], TTASpec(hflip=True), torch.device("cpu"), None, weights)
    image = np.random.default_rng(5).integers(0, 256, (32, 64, 3), dtype=np.uint8)

    assert [member.spec.name for member, _, _ in ensemble.runs()] == ["u", "w"]
    assert len(ensemble.prepare([image]).inputs) == 2  # none at the idle member's 64x64
    (got,) = ensemble.probabilities([image])
    red, green, _ = normalised(image)
    assert np.allclose(got, (3 * sigmoid(-green - 0.5) + sigmoid(red + 1)) / 4, atol=1e-5)


def test_an_ensemble_needs_a_member() -> None:
    with pytest.raises(ValueError, match=r"^an ensemble needs at least one trained model$"):
        Ensemble([], TTASpec(), torch.device("cpu"), None)


def blocky(blocks: npt.NDArray[np.uint8], side: int) -> npt.NDArray[np.uint8]:
    """(h, w, 3) colours -> (h * side, w * side, 3): each colour a ``side`` x ``side`` square."""
    return np.repeat(np.repeat(blocks, side, axis=0), side, axis=1)


@pytest.mark.parametrize("small_first", [True, False])
def test_a_large_image_is_halved_on_its_way_to_each_input_size(small_first: bool) -> None:
    # Images made of squares of one colour: averaging whole squares gives each square's colour
    # exactly, so the input at any size is worked out without resizing. The 256 x 512 image goes
    # to 32 x 64 through two halvings (256 -> 128 -> 64, each side still at least 4 times the
    # target before it) and an area resize, and to 64 x 128 through one; the 128 x 256 image to
    # 32 x 64 through one halving and to 64 x 128 through none.
    rng = np.random.default_rng(5)
    colours = [rng.integers(0, 256, (32, 64, 3), dtype=np.uint8) for _ in range(2)]
    images = [blocky(colours[0], 8), blocky(colours[1], 4)]
    assert [image.shape[:2] for image in images] == [(256, 512), (128, 256)]
    small = Member(ModelSpec.from_entry("s", {"arch": "unet11", "input_size": [32, 64]}), 0, nn.Identity())
    large = Member(ModelSpec.from_entry("l", {"arch": "unet11", "input_size": [64, 128]}), 0, nn.Identity())
    members = [small, large] if small_first else [large, small]
    ensemble = Ensemble(members, TTASpec(hflip=False), torch.device("cpu"), None)

    prepared = ensemble.prepare(images)
    assert prepared.sizes == [(256, 512), (128, 256)]
    at_small = prepared.inputs[ensemble.inputs_key(small.spec)].numpy()
    at_large = prepared.inputs[ensemble.inputs_key(large.spec)].numpy()
    assert at_small.shape == (2, 3, 32, 64)
    assert at_large.shape == (2, 3, 64, 128)
    for number, colour in enumerate(colours):
        assert np.allclose(at_small[number], normalised(colour), atol=1e-5)
        assert np.allclose(at_large[number], normalised(blocky(colour, 2)), atol=1e-5)


def test_finish_refuses_maps_that_do_not_match_its_runs_or_its_images() -> None:
    # The shard overlaps batches of 1, 2, 4, 8 images: maps finished with another batch's sizes,
    # or a run's maps missing, must raise instead of leaving a map short of a run or an image.
    spec = ModelSpec.from_entry("m", {"arch": "unet1024", "width": 0.125, "input_size": [64, 64]})
    ensemble = Ensemble([Member(spec, 0, nn.Identity())], TTASpec(hflip=False), torch.device("cpu"), None)
    one_image = np.full((1, 64, 64), 0.25, dtype=np.float32)  # one run's map of one image
    [finished] = ensemble.finish([(10, 20)], [one_image])
    assert finished.shape == (10, 20)
    assert np.allclose(finished, 0.25)  # one member of weight 1: its map, resized
    with pytest.raises(ValueError):
        ensemble.finish([(10, 20)], [])  # no run's maps
    with pytest.raises(ValueError):
        ensemble.finish([(10, 20)], [one_image, one_image])  # maps of two runs for one
    with pytest.raises(ValueError):
        ensemble.finish([(10, 20), (30, 40)], [one_image])  # two images, maps of one
    with pytest.raises(ValueError):
        ensemble.finish([(10, 20)], [np.concatenate([one_image, one_image])])  # one image, maps of two


def small_trained_network(seed: int) -> tuple[ModelSpec, nn.Module]:
    """A small unet1024 (ConvBnRelu throughout) in eval mode, its BatchNorms given statistics and
    affine weights of their own: fresh ones (mean 0, variance 1, scale 1, shift 0) would make
    folding them into the convolutions change almost nothing."""
    torch.manual_seed(seed)
    spec = ModelSpec.from_entry("m", {"arch": "unet1024", "width": 0.125, "input_size": [64, 64]})
    network = build_model(spec, load_pretrained=False)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return spec, network.eval()


def write_weights(path: Path, spec: ModelSpec, network: nn.Module, fold: int) -> Path:
    """weights.pt as a training job writes it (``carvana.training.job``)."""
    torch.save({"spec": spec.to_json(), "fold": fold, "epoch": 3, "state_dict": network.state_dict()}, path)
    return path


def batch_norms(network: nn.Module) -> int:
    return sum(type(module) is nn.BatchNorm2d for module in network.modules())


def test_read_member_reads_a_gpu_jobs_weights_on_a_cpu_as_trained_in_eval_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, network = small_trained_network(0)
    with monkeypatch.context() as patch:
        # a GPU job's weights.pt tags its tensors cuda:0; read on a machine without a GPU, only a
        # load mapped to the CPU succeeds (unmapped, torch raises: no CUDA device)
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        path = write_weights(tmp_path / "weights.pt", spec, network, fold=1)
    asked = []

    def build(spec: ModelSpec, load_pretrained: bool = True) -> nn.Module:
        asked.append(load_pretrained)
        return build_model(spec, load_pretrained=load_pretrained)

    # ImageNet weights would be overwritten by the trained ones: a prediction machine need not hold
    # them (a pretrained network built for real takes seconds: VGG11's classifier, or smp's import)
    monkeypatch.setattr(ensemble_module, "build_model", build)
    member = read_member(path)

    assert len(asked) == 1
    assert not asked[0]
    assert member.spec == spec
    assert member.fold == 1
    assert not any(module.training for module in member.network.modules())
    assert batch_norms(member.network) == batch_norms(network) > 0  # as trained: nothing folded
    saved, read = network.state_dict(), member.network.state_dict()
    assert read.keys() == saved.keys()
    for name, tensor in saved.items():
        assert read[name].device == torch.device("cpu")
        assert torch.equal(read[name], tensor), name


def test_load_member_folds_batch_norms_into_a_channels_last_network_that_predicts_the_same(
    tmp_path: Path,
) -> None:
    spec, network = small_trained_network(2)
    path = write_weights(tmp_path / "weights.pt", spec, network, fold=4)
    member = load_member(path, torch.device("cpu"))

    assert member.spec == spec
    assert member.fold == 4
    # eval mode, but for the Identity each folded BatchNorm leaves, which computes nothing either way
    assert not any(module.training for module in member.network.modules() if type(module) is not nn.Identity)
    assert batch_norms(network) > 0
    assert batch_norms(member.network) == 0  # every one followed a convolution: all folded
    kernels = [parameter for parameter in member.network.parameters() if parameter.dim() == 4]
    assert len(kernels) == sum(isinstance(module, nn.Conv2d) for module in network.modules())
    assert all(kernel.is_contiguous(memory_format=torch.channels_last) for kernel in kernels)
    assert not all(kernel.is_contiguous() for kernel in kernels)  # guard: the two layouts differ

    inputs = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = network(inputs)  # the unfolded network, in eval mode
        got = member.network(inputs.contiguous(memory_format=torch.channels_last))
        assert (got - expected).abs().max() <= 1e-5

    # the network goes to the device asked for ("meta": a device other than the CPU on any machine)
    elsewhere = load_member(path, torch.device("meta"))
    assert {parameter.device.type for parameter in elsewhere.network.parameters()} == {"meta"}


def prepared_batch() -> Prepared:
    generator = torch.Generator().manual_seed(6)
    inputs = {
        (32, 64): torch.rand(4, 3, 32, 64, generator=generator),
        (64, 64): torch.rand(4, 3, 64, 64, generator=generator),
    }
    return Prepared([(40, 70), (128, 96)], inputs)


def test_pin_memory_keeps_the_sizes_and_puts_each_batch_through_pinning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pinning needs a CUDA driver: without one, this torch build raises RuntimeError ("Found no
    # NVIDIA driver"). A stand-in that copies takes its place, here and on a GPU alike, so what is
    # checked is what Prepared adds: the sizes kept, and each batch replaced by its pinned copy.
    copies: list[torch.Tensor] = []

    def pinned_copy(self: torch.Tensor) -> torch.Tensor:
        copies.append(self.clone())
        return copies[-1]

    monkeypatch.setattr(torch.Tensor, "pin_memory", pinned_copy)
    prepared = prepared_batch()
    pinned = prepared.pin_memory()
    assert pinned.sizes == [(40, 70), (128, 96)]
    assert list(pinned.inputs) == [(32, 64), (64, 64)]
    assert len(copies) == 2
    for key, copy in zip(pinned.inputs, copies, strict=True):
        assert pinned.inputs[key] is copy
        assert torch.equal(copy, prepared.inputs[key])


def test_pin_memory_pins_every_batch() -> None:
    if not torch.cuda.is_available():
        pytest.skip("pinned host memory needs a CUDA driver")
    prepared = prepared_batch()
    pinned = prepared.pin_memory()
    assert pinned.sizes == prepared.sizes
    assert pinned.inputs.keys() == prepared.inputs.keys()
    for key, batch in pinned.inputs.items():
        assert batch.is_pinned()
        assert not prepared.inputs[key].is_pinned()
        assert torch.equal(batch, prepared.inputs[key])


class RedAbove(nn.Module):
    """A "network" that calls car every pixel whose red is well above the studio's grey: logits
    4 * (red - 0.86) in ImageNet units, the centre of each tile when it is unpadded (``border``)."""

    def __init__(self, border: int) -> None:
        super().__init__()
        self.border = border

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        red = inputs[:, :1]
        if self.border:
            red = red[:, :, self.border : -self.border, self.border : -self.border]
        return 4 * (red - 0.86)


# competition.yaml's architectures and sizes, read from it: what the full-resolution run trains and
# predicts at (unet on 572 tiles over 1280x1918, unet1024 at 1024x1024, unet11 at 1280x1920)
COMPETITION_MEMBERS = {
    name: {key: entry[key] for key in ("arch", "input_size", "tile_size") if key in entry}
    for name, entry in yaml.safe_load((Path(__file__).resolve().parents[2] / "competition.yaml").read_text())[
        "models"
    ].items()
}


def full_size_car() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """A 1280x1918 grey studio with a red "car": a body and, left of its centre, a cabin on top,
    so that a flip, a transpose or a shift of the map moves hundreds of thousands of pixels."""
    car = np.zeros((1280, 1918), dtype=bool)
    car[560:940, 260:1600] = True  # body
    car[330:560, 520:1100] = True  # cabin
    image = np.full((1280, 1918, 3), 128, dtype=np.uint8)
    image[car] = (220, 40, 40)
    return image, car


@pytest.mark.parametrize(
    "names",
    [["unet"], ["unet1024"], ["unet11"], ["unet", "unet1024", "unet11"]],
    ids=["unet", "unet1024", "unet11", "all three"],
)
def test_each_member_at_the_competitions_sizes_maps_the_car_back_where_it_is(names: list[str]) -> None:
    # Training can't show this on a CPU: a few steps at these sizes teach unet1024 and unet11 too
    # little to be weighed (tests/workflow/test_competition_geometry.py). With per-pixel "networks",
    # every map, through tiles, resizes to 1024x1024 and 1280x1920 and back, and the flip view,
    # must put the car where it is in the 1280x1918 image.
    image, car = full_size_car()
    members = []
    for name in names:
        spec = ModelSpec.from_entry(name, COMPETITION_MEMBERS[name])
        members.append(Member(spec, 0, RedAbove(spec.border)))
    assert members[0].spec.border == (92 if names[0] == "unet" else 0)  # 572 -> 388 per tile
    ensemble = Ensemble(members, TTASpec(hflip=True), torch.device("cpu"), None)

    (probability,) = ensemble.probabilities([image])
    assert probability.shape == (1280, 1918)
    called = probability > 0.5
    if names == ["unet"]:  # 20 tiles of 572 stitched at the image's own size: nothing resized
        red = (image[..., 0] - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
        assert np.allclose(probability, sigmoid(4 * (red - 0.86)), atol=1e-5)
        assert np.array_equal(called, car)
        return
    # a resize and its inverse blur the edge by a pixel or two, and nothing else
    edge = cv2.dilate(car.astype(np.uint8), np.ones((5, 5), np.uint8)) != cv2.erode(
        car.astype(np.uint8), np.ones((5, 5), np.uint8)
    )
    wrong = called != car
    assert not (wrong & ~edge).any(), np.argwhere(wrong & ~edge)[:5]
    assert wrong.sum() < 0.5 * edge.sum(), (wrong.sum(), edge.sum())


@pytest.mark.parametrize(("device", "expected"), [("cpu", 1), ("cuda", 3)])
def test_opencv_takes_one_thread_beside_a_cpus_networks_and_the_jobs_threads_beside_a_gpu(
    device: str, expected: int
) -> None:
    # a torch.device names a GPU without one being there: nothing runs on it here
    before_cv2, before_torch = cv2.getNumThreads(), torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        cv2.setNumThreads(5)
        ensemble_module.opencv_threads(torch.device(device))
        assert cv2.getNumThreads() == expected
    finally:
        cv2.setNumThreads(before_cv2)
        torch.set_num_threads(before_torch)
