"""Ensemble weights as the command line takes them: MODEL=NUMBER, each model once."""

from __future__ import annotations

import pytest

from carvana.prediction.weights import parse_weights


def test_weights_are_read_as_numbers() -> None:
    assert parse_weights(["unet=1e-1", "unet11=0", "vgg=3"]) == {"unet": 0.1, "unet11": 0.0, "vgg": 3.0}
    assert parse_weights([]) == {}


@pytest.mark.parametrize(
    "item",
    [
        "=2",  # no model name
        "unet==2",  # a doubled "=": not the model "unet=" weighing 2
        "unet=2=3",  # two values
        "unet",  # no weight
        "unet=",  # an empty weight
        "unet=x",
        "unet=nan",
        "unet=inf",
    ],
)
def test_an_item_that_is_not_model_equals_number_is_refused(item: str) -> None:
    with pytest.raises(ValueError, match=r"is not MODEL=NUMBER, e\.g\. unet11=0\.5"):
        parse_weights([item])


def test_a_model_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"ensemble weight of 'unet' is given twice"):
        parse_weights(["unet=1", "vgg=2", "unet=3"])
