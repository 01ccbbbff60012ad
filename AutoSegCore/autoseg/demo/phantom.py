"""The demo's synthetic abdomen: MR-like 3D volumes with two organs, written as an nnU-Net raw dataset.

Each case is an anisotropic (about 3 x 0.9 x 0.9 mm), obliquely oriented volume with a non-zero origin.
The anatomy lives in physical (mm) coordinates and is bent by a smooth random deformation: a body
with a fat rim, a spine and an aorta (unlabelled distractors), a large "liver" (label 1) and a smaller,
darker "kidney" (label 2). The image adds partial-volume blur, organ texture, a smooth multiplicative
bias field and noise. Everything is drawn from ``numpy.random.default_rng(seed)``, so a seed fixes a case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

LABELS = {"background": 0, "liver": 1, "kidney": 2}

#: Mean tissue intensities (arbitrary T1-like units).
INTENSITY = {"air": 0.0, "fat": 1000.0, "tissue": 450.0, "liver": 640.0, "kidney": 280.0,
             "bone": 90.0, "marrow": 720.0, "aorta": 880.0}


@dataclass(frozen=True)
class PhantomSettings:
    """What varies between demo datasets; the defaults are the demo's."""

    #: Field of view (z, y, x) in mm; the shape is this over the case's spacing.
    field_of_view_mm: tuple[float, float, float] = (144.0, 86.4, 86.4)
    #: Median spacing (z, y, x) in mm; each case draws its own within ``spacing_jitter`` (relative).
    spacing_mm: tuple[float, float, float] = (3.0, 0.9, 0.9)
    spacing_jitter: float = 0.05
    #: Largest rotation of the acquisition (degrees about each axis) and origin range (mm).
    max_tilt_degrees: float = 20.0
    origin_range_mm: float = 150.0
    #: Amplitude (mm) of the smooth deformation of the anatomy.
    deformation_mm: float = 4.0
    #: Relative strength of the multiplicative bias field and noise sigma (intensity units).
    bias_strength: float = 0.15
    noise_sigma: float = 45.0


@dataclass(frozen=True)
class PhantomCase:
    """One generated case: arrays in (z, y, x) order and its SimpleITK geometry (x, y, z order)."""

    image: np.ndarray  # float32
    label: np.ndarray  # uint8
    spacing: tuple[float, float, float]  # z, y, x
    direction: tuple[float, ...]  # 9 values, SimpleITK row-major
    origin: tuple[float, float, float]  # x, y, z


def rotation_matrix(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    """A random proper rotation with angles up to ``max_degrees`` about each axis."""
    ax, ay, az = np.deg2rad(rng.uniform(-max_degrees, max_degrees, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _smooth_field(rng: np.random.Generator, coords: Sequence[np.ndarray], amplitude: float, wavelength_mm: float,
                  terms: int = 4) -> np.ndarray:
    """A smooth random scalar field: a sum of ``terms`` plane waves of about ``wavelength_mm``."""
    field = np.zeros(np.broadcast_shapes(*(c.shape for c in coords)), np.float32)
    for _ in range(terms):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        k = 2 * np.pi / (wavelength_mm * rng.uniform(0.7, 1.4))
        phase = rng.uniform(0, 2 * np.pi)
        field += np.sin(sum(k * d * c for d, c in zip(direction, coords)) + phase).astype(np.float32)
    return field * (amplitude / np.sqrt(terms))


def _ellipsoid(coords: list[np.ndarray], center, radii, angle: float = 0.0) -> np.ndarray:
    """Boolean ellipsoid in (z, y, x) mm coordinates, rotated by ``angle`` (radians) in the y-x plane."""
    z, y, x = (c - c0 for c, c0 in zip(coords, center))
    yr = np.cos(angle) * y - np.sin(angle) * x
    xr = np.sin(angle) * y + np.cos(angle) * x
    return (z / radii[0]) ** 2 + (yr / radii[1]) ** 2 + (xr / radii[2]) ** 2 < 1.0


def _cylinder(coords: list[np.ndarray], center_yx, radii_yx) -> np.ndarray:
    """Boolean elliptic cylinder along z."""
    _, y, x = coords
    return ((y - center_yx[0]) / radii_yx[0]) ** 2 + ((x - center_yx[1]) / radii_yx[1]) ** 2 < 1.0


def phantom_case(seed: int | Sequence[int], settings: PhantomSettings = PhantomSettings()) -> PhantomCase:
    """Generate one case; the same seed and settings give the same case."""
    rng = np.random.default_rng(seed)
    sz, sy, sx = (float(s * rng.uniform(1 - settings.spacing_jitter, 1 + settings.spacing_jitter))
                  for s in settings.spacing_mm)
    spacing = (sz, sy, sx)
    shape = tuple(int(round(f / s)) for f, s in zip(settings.field_of_view_mm, spacing))
    # physical coordinates (mm) relative to the volume centre, as broadcastable open grids
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    grid = np.meshgrid(*axes, indexing="ij", sparse=True)
    deformed = [g + _smooth_field(rng, grid, settings.deformation_mm, 70.0) for g in grid]

    body_radii = (rng.uniform(37, 41), rng.uniform(39, 42.5))
    body = _cylinder(deformed, (0.0, 0.0), body_radii)
    inner = _cylinder(deformed, (0.0, 0.0), tuple(r - rng.uniform(3.5, 6.0) for r in body_radii))
    spine_center = (rng.uniform(22, 26), rng.uniform(-2, 2))
    spine = _cylinder(deformed, spine_center, (8.0, 9.0))
    marrow = _cylinder(deformed, spine_center, (6.0, 7.0))
    aorta_center = (spine_center[0] - rng.uniform(13, 15), spine_center[1] - rng.uniform(6, 9))
    aorta = _cylinder(deformed, aorta_center, (5.0, 5.0))

    liver_center = (rng.uniform(-8, 8), rng.uniform(-8, -3), rng.uniform(-17, -12))
    liver_radii = (rng.uniform(40, 50), rng.uniform(20, 25), rng.uniform(18, 23))
    liver = _ellipsoid(deformed, liver_center, liver_radii, rng.uniform(-0.4, 0.4)) & inner & ~spine & ~aorta
    kidney_center = (rng.uniform(-15, 5), rng.uniform(4, 10), rng.uniform(18, 23))
    kidney_radii = (rng.uniform(24, 30), rng.uniform(14, 17), rng.uniform(11, 14))
    kidney = _ellipsoid(deformed, kidney_center, kidney_radii, rng.uniform(-0.6, 0.6)) & inner & ~spine & ~aorta
    liver &= ~kidney

    values = np.full(shape, INTENSITY["air"], np.float32)
    values[body] = INTENSITY["fat"]
    values[inner] = INTENSITY["tissue"]
    values[spine & inner] = INTENSITY["bone"]
    values[marrow & inner] = INTENSITY["marrow"]
    values[aorta & inner] = INTENSITY["aorta"]
    texture = 1.0 + 0.06 * _smooth_field(rng, grid, 1.0, 12.0, terms=6)
    values[liver] = INTENSITY["liver"] * texture[liver]
    values[kidney] = INTENSITY["kidney"] * texture[kidney]

    # partial volume (the slice profile is wider along z), bias field, noise
    image = gaussian_filter(values, sigma=(0.45, 0.6, 0.6))
    image *= 1.0 + settings.bias_strength * _smooth_field(rng, grid, 1.0, 120.0, terms=3)
    image += rng.normal(0.0, settings.noise_sigma, shape).astype(np.float32)
    image = np.abs(image)  # magnitude images are non-negative (Rician-like background)

    label = np.zeros(shape, np.uint8)
    label[liver] = LABELS["liver"]
    label[kidney] = LABELS["kidney"]
    direction = rotation_matrix(rng, settings.max_tilt_degrees)
    origin = rng.uniform(-settings.origin_range_mm, settings.origin_range_mm, 3)
    return PhantomCase(image.astype(np.float32), label, spacing, tuple(direction.flatten().tolist()),
                       tuple(origin.tolist()))
