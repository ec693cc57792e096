"""One generated car: its dimensions, paint, studio colours and the make and model it claims.

A car is a parametric 3-D model in metres (a chamfered body, a glass cabin with a roof, four
wheels with rims, two side mirrors, sometimes an antenna) with the colours of its paint and of the
studio it stands in, drawn from a seeded generator. About a third of the studios take the car's
own colour (a white car in a white studio), so the background cannot be told from the car by
colour alone. ``carvana.data.synthetic_render`` photographs it; ``carvana.data.synthetic`` writes
the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Typical car paints, RGB.
_PAINTS = np.array(
    [
        (236, 236, 234),  # white
        (190, 192, 196),  # silver
        (120, 122, 126),  # grey
        (28, 28, 30),  # black
        (160, 22, 26),  # red
        (30, 60, 140),  # blue
        (18, 30, 62),  # dark blue
        (40, 90, 60),  # green
        (200, 180, 140),  # beige
        (90, 60, 40),  # brown
        (230, 190, 30),  # yellow
    ],
    dtype=np.float64,
)
_MAKES = (
    ("Acura", ("MDX", "RDX", "TLX")),
    ("Audi", ("A4", "Q5", "Q7")),
    ("BMW", ("3 Series", "X3", "X5")),
    ("Chevrolet", ("Malibu", "Equinox", "Tahoe")),
    ("Ford", ("Focus", "Escape", "F-150")),
    ("Honda", ("Civic", "Accord", "CR-V")),
    ("Hyundai", ("Elantra", "Sonata", "Tucson")),
    ("Kia", ("Optima", "Soul", "Sorento")),
    ("Mazda", ("Mazda3", "CX-5", "MX-5 Miata")),
    ("Nissan", ("Altima", "Rogue", "Sentra")),
    ("Subaru", ("Outback", "Forester", "Impreza")),
    ("Toyota", ("Camry", "Corolla", "RAV4")),
    ("Volkswagen", ("Jetta", "Passat", "Golf")),
)
_TRIMS = ("Base", "LX", "EX", "SE", "Limited", "Sport", "Touring", "Premium")


@dataclass(frozen=True)
class CarModel:
    """Dimensions in metres and colours (RGB floats) of one generated car and its studio."""

    car_id: str
    length: float
    width: float
    clearance: float
    belt: float  # height of the body's top edge (bottom of the windows)
    roof: float
    wheel_radius: float
    wheelbase: float
    cabin: tuple[float, float, float, float]  # x of cabin bottom rear/front, roof rear/front
    hood_bevel: float
    has_antenna: bool
    paint: FloatArray = field(repr=False)
    wall: FloatArray = field(repr=False)
    floor: FloatArray = field(repr=False)
    elevation_deg: float = 11.0
    yaw_offset_deg: float = 0.0
    make: str = ""
    model: str = ""
    year: int = 2016
    trim1: str = ""
    trim2: str = ""


def random_car(rng: np.random.Generator, car_id: str) -> CarModel:
    """Draw a car and its studio. About a third of the studios take the car's own colour."""
    length = rng.uniform(4.0, 5.2)
    roof = rng.uniform(1.35, 1.85)
    belt = rng.uniform(0.72, 0.95) + 0.25 * (roof - 1.35)
    rear = rng.uniform(-0.34, -0.24) * length
    front = rng.uniform(0.12, 0.24) * length
    rake_front = rng.uniform(0.12, 0.22) * length
    rake_rear = rng.uniform(0.02, 0.14) * length
    paint = _PAINTS[rng.integers(len(_PAINTS))] * rng.uniform(0.9, 1.08)
    if rng.random() < 0.35:
        wall = paint * rng.uniform(0.95, 1.08) + rng.normal(0, 6, 3)
        floor = wall * rng.uniform(0.85, 0.98)
    else:
        base = rng.uniform(175, 245)
        tint = rng.normal(0, 5, 3)
        wall = base + tint
        floor = (base + tint) * rng.uniform(0.78, 0.95)
    make, models = _MAKES[rng.integers(len(_MAKES))]
    return CarModel(
        car_id=car_id,
        length=length,
        width=rng.uniform(1.7, 2.0),
        clearance=rng.uniform(0.14, 0.26),
        belt=belt,
        roof=roof,
        wheel_radius=rng.uniform(0.30, 0.40),
        wheelbase=rng.uniform(0.56, 0.63) * length,
        cabin=(rear, front, rear + rake_rear, front - rake_front),
        hood_bevel=rng.uniform(0.08, 0.2),
        has_antenna=bool(rng.random() < 0.6),
        paint=np.clip(paint, 0, 255),
        wall=np.clip(wall, 0, 255),
        floor=np.clip(floor, 0, 255),
        elevation_deg=rng.uniform(8.0, 14.0),
        yaw_offset_deg=rng.uniform(-2.0, 2.0),
        make=make,
        model=models[rng.integers(len(models))],
        year=int(rng.integers(2001, 2017)),
        trim1=str(_TRIMS[rng.integers(len(_TRIMS))]) if rng.random() < 0.8 else "",
        trim2=str(_TRIMS[rng.integers(len(_TRIMS))]) if rng.random() < 0.3 else "",
    )
