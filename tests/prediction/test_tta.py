"""TTA and the ensemble: identities a person can check."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import torch
from torch import nn

from carvana.models.inference import network_input, resize
from carvana.models.spec import ModelSpec
from carvana.prediction.ensemble import Ensemble, Member
from carvana.prediction.shard import shard_images
from carvana.prediction.stream import batch_sizes, batches
from carvana.prediction.tta import FLIPS, TTASpec, flip_image, flip_tensor, merge_views, tta_inputs
from carvana.prediction.weights import model_weights, parse_weights


@pytest.mark.parametrize("view", list(FLIPS))
def test_flip_then_unflip_is_a_round_trip_on_a_non_square_image(view: str) -> None:
    image = np.arange(5 * 7 * 3).reshape(5, 7, 3)
    batch = torch.arange(2 * 1 * 5 * 7).reshape(2, 1, 5, 7)
    assert (flip_image(flip_image(image, view), view) == image).all()
    assert torch.equal(flip_tensor(flip_tensor(batch, view), view), batch)
    # the same view flips images (H, W, C) and batches (N, C, H, W) the same way
    assert (flip_tensor(batch, view)[0, 0].numpy() == flip_image(batch[0, 0].numpy(), view)).all()


def test_hflip_mirrors_left_and_right() -> None:
    assert flip_image(np.array([[1, 2, 3]]), "hflip").tolist() == [[3, 2, 1]]
    assert flip_image(np.array([[1], [2]]), "vflip").tolist() == [[2], [1]]


@pytest.mark.parametrize("tta", [TTASpec(False, False), TTASpec(True, False), TTASpec(True, True)])
def test_an_identity_model_through_flip_tta_returns_its_input(tta: TTASpec) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(3)]

    def to_input(image: np.ndarray) -> np.ndarray:
        return (image.astype(np.float32).transpose(2, 0, 1) - 128) / 32

    inputs = torch.from_numpy(tta_inputs(images, tta.views(), to_input))
    assert inputs.shape == (3 * len(tta.views()), 3, 5, 7)
    logits = inputs[:, :1]  # the "network" returns its first channel as logits
    expected = torch.sigmoid(torch.from_numpy(np.stack([to_input(image) for image in images]))[:, :1])
    assert torch.allclose(merge_views(logits, tta.views()), expected, atol=1e-6)


def test_flip_tta_averages_a_models_views() -> None:
    # a "network" that sees only the left half: its hflip view sees the right half, so the
    # average is 0.5 * (left-biased + right-biased), symmetric left to right
    logits = torch.tensor([[[[4.0, -4.0]]], [[[4.0, -4.0]]]])  # identity view, then hflip view
    merged = merge_views(logits, ["identity", "hflip"])
    assert torch.allclose(merged, torch.full((1, 1, 1, 2), 0.5))


def test_flip_tta_averages_probabilities_not_logits() -> None:
    # identity view [ln 9, 0]; hflip view [ln 9, 0], flipped back [0, ln 9]. sigmoid(ln 9) = 0.9
    # and sigmoid(0) = 0.5, so each pixel's mean probability is 0.7; the mean logit, ln 3, would
    # give sigmoid(ln 3) = 0.75, and a view left unflipped would give [0.9, 0.5]
    logits = torch.tensor([[[[np.log(9), 0.0]]], [[[np.log(9), 0.0]]]])
    merged = merge_views(logits, ["identity", "hflip"])
    assert torch.allclose(merged, torch.full((1, 1, 1, 2), 0.7), atol=1e-6)


def test_logits_that_do_not_split_into_the_views_are_refused_with_their_count() -> None:
    # three images' logits (3, 1, H, W) given as two views: the count is the batch's, not a channel's
    with pytest.raises(ValueError, match=r"^3 logits do not split into 2 views$"):
        merge_views(torch.zeros(3, 1, 2, 2), ["identity", "hflip"])


# ImageNet's mean and standard deviation per RGB channel, in 8-bit units: what the networks see
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406]) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225]) * 255


def red_plus_ramp(red: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The logits of ``RedPlusRamp`` in NumPy: the normalised red channel (H, W) plus a ramp that
    rises down the rows and falls along the columns, so no flip leaves it as it was."""
    rows, cols = np.mgrid[: red.shape[0], : red.shape[1]]
    return red + 0.25 * rows - 0.125 * cols


class RedPlusRamp(nn.Module):
    """A "network" whose logit at (row, col) is the input's first channel there plus
    0.25 * row - 0.125 * col: a pixel's own value, and a position that flips move."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(inputs.shape[-2], dtype=torch.float32)[:, None]
        cols = torch.arange(inputs.shape[-1], dtype=torch.float32)[None, :]
        return inputs[:, :1] + 0.25 * rows - 0.125 * cols


def sigmoid(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1 / (1 + np.exp(-logits))


def view_logits(image: npt.NDArray[np.uint8], axes: tuple[int, ...]) -> npt.NDArray[np.float64]:
    """``red_plus_ramp`` of ``image`` (H, W, 3) flipped on ``axes`` (0 rows, 1 columns), flipped back."""
    seen = np.flip(image, axis=axes).astype(np.float64)
    red = (seen[..., 0] - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    return np.flip(red_plus_ramp(red), axis=axes)


# each TTA's views as the axes they flip, written out: the answer must not come from TTASpec.views()
TTA_AXES = {
    (True, False): [(), (1,)],
    (False, True): [(), (0,)],
    (True, True): [(), (1,), (0,), (0, 1)],
}


@pytest.mark.parametrize(("hflip", "vflip"), list(TTA_AXES))
def test_an_ensemble_averages_each_flip_views_probabilities_flipped_back(hflip: bool, vflip: bool) -> None:
    # a non-square image at the model's input size (no resize), two images to a batch
    spec = ModelSpec.from_entry("m", {"arch": "unet11", "input_size": [32, 64], "gpu": 0})
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (32, 64, 3), dtype=np.uint8) for _ in range(2)]
    ensemble = Ensemble([Member(spec, 0, RedPlusRamp())], TTASpec(hflip, vflip), torch.device("cpu"), None)
    got = ensemble.probabilities(images)

    for image, probability in zip(images, got, strict=True):
        per_view = [view_logits(image, axes) for axes in TTA_AXES[hflip, vflip]]
        expected = np.mean([sigmoid(logits) for logits in per_view], axis=0)
        assert probability.shape == (32, 64)
        assert np.allclose(probability, expected, atol=1e-5)
        # guards: each wrong answer differs from the right one, so the test can tell them apart
        mean_logit = sigmoid(np.mean(per_view, axis=0))
        assert np.abs(expected - mean_logit).max() > 0.01
        assert np.abs(expected - sigmoid(view_logits(image, ()))).max() > 0.01
        if hflip and vflip:
            no_hvflip = np.mean([sigmoid(logits) for logits in per_view[:3]], axis=0)
            width_only = np.mean([sigmoid(logits) for logits in [*per_view[:3], per_view[1]]], axis=0)
            assert np.abs(expected - no_hvflip).max() > 0.01
            assert np.abs(expected - width_only).max() > 0.01


def test_an_ensemble_of_one_model_equals_that_model() -> None:
    torch.manual_seed(0)
    spec = ModelSpec.from_entry("m", {"arch": "unet1024", "width": 0.125, "input_size": [64, 64]})
    network = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1)).eval()
    image = np.random.default_rng(1).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    ensemble = Ensemble([Member(spec, 0, network)], TTASpec(hflip=False), torch.device("cpu"), None)
    resized = np.asarray(resize(image, (64, 64)), dtype=np.uint8)  # the members' own resizing
    with torch.no_grad():
        direct = torch.sigmoid(network(torch.from_numpy(network_input(resized, spec))[None]))[0, 0].numpy()
    expected = resize(direct, (40, 70))
    [got] = ensemble.probabilities([image])
    assert got.shape == (40, 70)
    assert np.allclose(got, expected, atol=1e-5)
    # two copies of the model average to the same map
    twice = Ensemble([Member(spec, 0, network)] * 2, TTASpec(hflip=False), torch.device("cpu"), None)
    assert np.allclose(twice.probabilities([image])[0], got, atol=1e-6)


def test_a_member_predicts_at_the_precision_it_was_trained_at() -> None:
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1)).eval()
    image = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)

    def predicted(precision: str, auto: torch.dtype | None) -> npt.NDArray[np.float32]:
        """The map of a member trained at ``precision``, where ``auto`` means ``auto``."""
        spec = ModelSpec.from_entry("m", {"arch": "unet1024", "input_size": [64, 64], "precision": precision})
        ensemble = Ensemble([Member(spec, 0, network)], TTASpec(hflip=False), torch.device("cpu"), auto)
        return ensemble.probabilities([image])[0]

    float32, bf16 = predicted("auto", None), predicted("auto", torch.bfloat16)
    assert np.abs(float32 - bf16).max() > 1e-4  # bf16 rounds: the two are told apart
    assert np.array_equal(predicted("32-true", torch.bfloat16), float32)
    assert np.array_equal(predicted("bf16-mixed", None), bf16)
    # a CPU has no fast fp16: a model trained in fp16 on a GPU predicts there as auto says
    assert np.array_equal(predicted("16-mixed", None), float32)
    assert np.array_equal(predicted("16-mixed", torch.bfloat16), bf16)


class Constant(nn.Module):
    """A "network" whose every logit is ``value``, whatever the input's size."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.full((inputs.shape[0], 1, *inputs.shape[-2:]), self.value)


def test_ensemble_weights_give_the_weighted_mean_of_the_models() -> None:
    # sigmoid(ln 3) = 0.75 and sigmoid(-ln 3) = 0.25; "a" weighs 3 (two folds), "b" 1 (one fold):
    # (3 * 0.75 + 3 * 0.75 + 1 * 0.25) / 7 = 4.75 / 7
    spec_a = ModelSpec.from_entry("a", {"arch": "unet1024", "width": 0.125, "input_size": [64, 64]})
    spec_b = ModelSpec.from_entry("b", {"arch": "unet1024", "width": 0.125, "input_size": [64, 64]})
    members = [
        Member(spec_a, 0, Constant(np.log(3))),
        Member(spec_a, 1, Constant(np.log(3))),
        Member(spec_b, 0, Constant(-np.log(3))),
    ]
    image = np.zeros((10, 20, 3), dtype=np.uint8)
    cpu = torch.device("cpu")
    weighted = Ensemble(members, TTASpec(hflip=False), cpu, None, {"a": 3})
    assert np.allclose(weighted.probabilities([image])[0], 4.75 / 7, atol=1e-6)
    equal = Ensemble(members, TTASpec(hflip=False), cpu, None)
    assert np.allclose(equal.probabilities([image])[0], (0.75 + 0.75 + 0.25) / 3, atol=1e-6)
    only_b = Ensemble(members, TTASpec(hflip=False), cpu, None, {"a": 0})
    assert np.allclose(only_b.probabilities([image])[0], 0.25, atol=1e-6)


def test_ensemble_weights_are_checked() -> None:
    assert parse_weights(["unet=2", "unet11=0.5"]) == {"unet": 2.0, "unet11": 0.5}
    with pytest.raises(ValueError, match=r"'unet' is not MODEL=NUMBER"):
        parse_weights(["unet"])
    with pytest.raises(ValueError, match=r"'unet=x' is not MODEL=NUMBER"):
        parse_weights(["unet=x"])
    with pytest.raises(
        ValueError, match=r"\['vgg'\], which are not in the ensemble; its models are \['unet'\]$"
    ):
        model_weights(["unet", "unet"], {"vgg": 1})
    with pytest.raises(ValueError, match=r"must be >= 0, got \{'unet': -1.0\}"):
        model_weights(["unet"], {"unet": -1.0})
    with pytest.raises(ValueError, match=r"every ensemble weight is 0"):
        model_weights(["unet"], {"unet": 0})
    assert model_weights(["a", "a", "b"], {"b": 0.5}) == [1.0, 1.0, 0.5]


def test_tta_scales_resize_to_sizes_the_architecture_takes() -> None:
    spec = ModelSpec.from_entry("m", {"arch": "unet1024", "width": 0.125, "input_size": [128, 192]})
    assert spec.at_scale(1.0) is spec
    assert spec.at_scale(1.25).input_size == (192, 256)  # 160 x 240 rounded to multiples of 64
    assert spec.at_scale(0.1).input_size == (64, 64)  # never below one multiple
    unet = ModelSpec.from_entry("u", {"arch": "unet", "input_size": [80, 120], "tile_size": [268, 316]})
    assert unet.at_scale(1.5).input_size == (120, 180)  # tiles cover any size
    with pytest.raises(ValueError, match=r"TTA scales repeat: \[1.0, 1.0\]"):
        TTASpec(scales=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"one or more positive numbers, got \[0.0\]"):
        TTASpec(scales=(0.0,))


def test_a_scale_tta_averages_the_member_at_each_scale() -> None:
    # a "network" that answers with its input's width: logit = W / 64 - 2.5. At scales 0.5 and
    # 1.5 of a 64 x 128 input the sizes are 64 x 64 and 128 x 192 (multiples of 64), so the
    # logits are -1.5 and 0.5 and the map is the mean of their sigmoids, flips and all
    class Width(nn.Module):
        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            width = inputs.shape[-1]
            return torch.full((inputs.shape[0], 1, *inputs.shape[-2:]), width / 64 - 2.5)

    spec = ModelSpec.from_entry("m", {"arch": "unet1024", "width": 0.125, "input_size": [64, 128]})
    member = Member(spec, 0, Width())
    image = np.zeros((16, 40, 3), dtype=np.uint8)
    scaled = Ensemble([member], TTASpec(hflip=True, scales=(0.5, 1.5)), torch.device("cpu"), None)
    assert [spec.at_scale(s).input_size for s in (0.5, 1.5)] == [(64, 64), (128, 192)]
    expected = (torch.sigmoid(torch.tensor(-1.5)) + torch.sigmoid(torch.tensor(0.5))) / 2
    assert np.allclose(scaled.probabilities([image])[0], float(expected), atol=1e-6)


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_the_test_set_once_in_order(count: int) -> None:
    images = [f"{i:012x}_01.jpg" for i in range(10)]
    shards = [shard_images(images, index, count) for index in range(1, count + 1)]
    assert [name for shard in shards for name in shard] == images
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


@pytest.mark.parametrize(
    ("count", "batch_size", "sizes"),
    [
        (32, 8, [1, 2, 4, 8, 8, 8, 1]),
        (7, 8, [1, 2, 4]),
        (5, 8, [1, 2, 2]),
        (10, 3, [1, 2, 3, 3, 1]),
        (3, 1, [1, 1, 1]),
        (0, 8, []),
    ],
)
def test_a_shards_batches_double_from_one_image_to_the_batch_size(
    count: int, batch_size: int, sizes: list[int]
) -> None:
    assert batch_sizes(count, batch_size) == sizes


def test_without_the_ramp_batches_are_full_from_the_start() -> None:
    assert batch_sizes(10, 4, ramp=False) == [4, 4, 2]
    assert batches(list("abcdefg"), 3, ramp=False) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert batches(list("abcdefg"), 3) == [["a"], ["b", "c"], ["d", "e", "f"], ["g"]]
