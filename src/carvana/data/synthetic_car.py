"""One generated car: a parametric 3-D model (a chamfered body, a glass cabin with a roof, four
wheels with rims, two side mirrors, sometimes an antenna) on a turntable in its studio, drawn in
any of the 16 views as an RGB image and its mask.

Rendering is done at a supersampled scale with hard polygons, then area-downsampled: the image gets
smooth edges and the mask is "more than half of the pixel is car", as a human labeller would draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from carvana.layout import VIEWS_PER_CAR

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


def render_view(
    car: CarModel, view: int, image_size: tuple[int, int], rng: np.random.Generator
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Render view 1..16 of a car: (RGB uint8 (height, width, 3), mask uint8 (height, width) 0/1).

    The image is returned before JPEG compression.
    """
    height, width = image_size
    ss = max(1, min(4, math.ceil(640 / height)))  # supersampling factor
    big_h, big_w = height * ss, width * ss
    yaw = math.radians(car.yaw_offset_deg + (view - 1) * 360.0 / VIEWS_PER_CAR)
    elevation = math.radians(car.elevation_deg)
    scale = 0.8 * big_w / car.length  # pixels per metre: a side view fills 80% of the width
    centre_u = big_w * rng.uniform(0.48, 0.52)
    ground_v = big_h * rng.uniform(0.74, 0.80)

    def project(points: FloatArray) -> tuple[npt.NDArray[np.int32], float]:
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        xr = x * math.cos(yaw) - y * math.sin(yaw)
        yr = x * math.sin(yaw) + y * math.cos(yaw)
        u = centre_u + scale * xr
        v = ground_v - scale * (z * math.cos(elevation) + yr * math.sin(elevation))
        return np.stack([u, v], axis=1).round().astype(np.int32), float(yr.mean())

    canvas = _studio(car, big_h, big_w, ground_v, rng)
    canvas = _shadow(canvas, car, project, rng)
    car_layer = np.zeros_like(canvas)
    mask = np.zeros((big_h, big_w), np.uint8)

    parts = _parts(car)
    projected = [(project(points), colour) for points, colour in parts]
    projected.sort(key=lambda item: -item[0][1])  # far parts first
    for (uv, _depth), colour in projected:
        hull = cv2.convexHull(uv)
        cv2.fillConvexPoly(car_layer, hull, colour.tolist(), lineType=cv2.LINE_8)
        cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8)
    if car.has_antenna:
        x0, x1 = car.cabin[2] + 0.15, car.cabin[2] - 0.25
        (a, b), _ = project(np.array([[x0, 0.0, car.roof], [x1, 0.0, car.roof + 0.55]]))
        thickness = max(1, round(ss * rng.uniform(0.6, 1.0)))
        cv2.line(car_layer, tuple(a.tolist()), tuple(b.tolist()), (25, 25, 25), thickness)
        cv2.line(mask, tuple(a.tolist()), tuple(b.tolist()), 1, thickness)

    car_layer = _shade_and_glare(car_layer, mask, rng)
    alpha = mask[..., None].astype(np.float32)
    composite = canvas * (1 - alpha) + car_layer * alpha
    small = np.asarray(cv2.resize(composite, (width, height), interpolation=cv2.INTER_AREA), np.float32)
    coverage = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    noise = rng.normal(0.0, rng.uniform(1.5, 4.0), small.shape).astype(np.float32)
    image = np.clip(small + noise, 0, 255).astype(np.uint8)
    return image, (coverage > 0.5).astype(np.uint8)


def _box(x: Sequence[float], y: Sequence[float], z: Sequence[float]) -> FloatArray:
    return np.array([(a, b, c) for a in x for b in y for c in z], dtype=np.float64)


def _parts(car: CarModel) -> list[tuple[FloatArray, FloatArray]]:
    """Convex 3-D point sets of the car's parts with their colours (RGB floats)."""
    half_l, half_w = car.length / 2, car.width / 2
    bevel = car.hood_bevel
    body_points = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            body_points += [
                (sx * half_l, sy * half_w, car.clearance + 0.05),
                (sx * (half_l - 0.08), sy * half_w, car.clearance),
                (sx * half_l, sy * half_w, car.belt - bevel),
                (sx * (half_l - 2.5 * bevel), sy * half_w * 0.97, car.belt),
            ]
    body = np.array(body_points)
    rear, front, roof_rear, roof_front = car.cabin
    cabin_w = half_w * 0.86
    cabin = np.array(
        [(x, s * cabin_w, car.belt) for x in (rear, front) for s in (-1, 1)]
        + [(x, s * cabin_w * 0.85, car.roof - 0.05) for x in (roof_rear, roof_front) for s in (-1, 1)]
    )
    roof_cap = np.array(
        [
            (x, s * cabin_w * 0.85, z)
            for x in (roof_rear - 0.03, roof_front + 0.03)
            for s in (-1, 1)
            for z in (car.roof - 0.08, car.roof)
        ]
    )
    glass = np.array([40.0, 48.0, 58.0])
    dark = np.array([22.0, 22.0, 24.0])
    rim = np.array([150.0, 152.0, 156.0])
    parts: list[tuple[FloatArray, FloatArray]] = [
        (body, car.paint),
        (cabin, glass),
        (roof_cap, car.paint * 0.97),
    ]
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    for x in (-car.wheelbase / 2, car.wheelbase / 2):
        for s in (-1, 1):
            tyre = [
                (x + car.wheel_radius * cx, s * y, car.wheel_radius * (1 + cz))
                for cx, cz in circle
                for y in (half_w * 0.80, half_w * 0.98)
            ]
            hub = [
                (x + 0.6 * car.wheel_radius * cx, s * half_w * 1.0, car.wheel_radius * (1 + 0.6 * cz))
                for cx, cz in circle
            ]
            parts.append((np.array(tyre), dark))
            parts.append((np.array(hub), rim))
    mirror_x = front - 0.05
    for s in (-1, 1):
        mirror = _box(
            (mirror_x - 0.12, mirror_x),
            tuple(sorted((s * half_w * 0.92, s * (half_w + 0.16)))),
            (car.belt + 0.02, car.belt + 0.14),
        )
        parts.append((mirror, car.paint * 0.9))
    return parts


def _studio(
    car: CarModel, height: int, width: int, horizon_ratio_v: float, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Backdrop: a wall with a vertical gradient above a floor, and a turntable edge on the floor."""
    horizon = int(horizon_ratio_v - rng.uniform(0.18, 0.28) * height)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    wall = car.wall.astype(np.float32) * (1.04 - 0.08 * rows)
    floor = car.floor.astype(np.float32) * (0.95 + 0.08 * rows)
    canvas = np.where(np.arange(height)[:, None, None] < horizon, wall, floor)
    canvas = np.broadcast_to(canvas, (height, width, 3)).astype(np.float32).copy()
    centre = (int(width * rng.uniform(0.45, 0.55)), int(horizon_ratio_v))
    axes = (int(width * rng.uniform(0.42, 0.5)), int(height * rng.uniform(0.07, 0.11)))
    ring = (car.floor * rng.uniform(0.88, 0.96)).tolist()
    cv2.ellipse(canvas, centre, axes, 0, 0, 360, ring, thickness=-1)
    return canvas


def _shadow(
    canvas: npt.NDArray[np.float32],
    car: CarModel,
    project: Callable[[FloatArray], tuple[npt.NDArray[np.int32], float]],
    rng: np.random.Generator,
) -> npt.NDArray[np.float32]:
    """Darken the floor under the car with a soft shadow (outside the mask)."""
    height, width = canvas.shape[:2]
    half_l, half_w = car.length / 2 * 1.08, car.width / 2 * 1.15
    footprint = np.array([(sx * half_l, sy * half_w, 0.0) for sx in (-1, 1) for sy in (-1, 1)])
    (uv, _depth) = project(footprint)
    small = 4
    shade = np.zeros((height // small + 1, width // small + 1), np.float32)
    cv2.fillConvexPoly(shade, cv2.convexHull(uv // small), 1.0)
    sigma = max(1.0, 0.03 * width / small)
    shade = cv2.GaussianBlur(shade, (0, 0), sigma)
    shade = cv2.resize(shade, (width, height), interpolation=cv2.INTER_LINEAR)
    strength = np.float32(rng.uniform(0.35, 0.6))
    shaded: npt.NDArray[np.float32] = canvas * (1 - strength * shade[..., None])
    return shaded


def _shade_and_glare(
    car_layer: npt.NDArray[np.float32], mask: npt.NDArray[np.uint8], rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Light the car from above (brighter top, darker sills) and add blurred specular glare."""
    height, width = mask.shape
    rows, cols = np.nonzero(mask)
    top, bottom = rows.min(), rows.max()
    left, right = cols.min(), cols.max()
    ramp = np.ones(height, np.float32)
    span = max(1, bottom - top)
    ramp[top : bottom + 1] = 1.12 - 0.3 * np.linspace(0, 1, bottom - top + 1, dtype=np.float32)
    lit = car_layer * ramp[:, None, None]
    glare = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(1, 4))):
        centre = (int(rng.uniform(left, right)), int(top + rng.uniform(0.15, 0.55) * span))
        axes = (int(rng.uniform(0.05, 0.18) * (right - left)) + 1, int(rng.uniform(0.02, 0.06) * span) + 1)
        cv2.ellipse(
            glare, centre, axes, float(rng.uniform(-15, 15)), 0, 360, float(rng.uniform(0.5, 1.0)), -1
        )
    glare = np.asarray(cv2.GaussianBlur(glare, (0, 0), max(1.0, 0.01 * width)), dtype=np.float32)
    glare = glare[..., None]
    return np.clip(lit * (1 - glare) + 252.0 * glare, 0, 255)
