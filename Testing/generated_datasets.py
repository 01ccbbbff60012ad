"""Small raw datasets written on the fly, for geometries and formats the shared data lacks.

Each writer fills ``raw`` (an empty ``nnUNet_raw/DatasetXXX_Name`` folder) with a complete dataset:
2D PNG images, oblique anisotropic two-channel NIfTI, and 3D TIFF stacks with spacing sidecars.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from autoseg.demo.synthetic import synthetic_case


def _dataset_json(raw: Path, channels: list[str], labels: dict, n: int, ending: str) -> None:
    content = {"channel_names": {str(i): c for i, c in enumerate(channels)}, "labels": labels,
               "numTraining": n, "file_ending": ending}
    (raw / "dataset.json").write_text(json.dumps(content))


def _folders(raw: Path) -> None:
    (raw / "imagesTr").mkdir(parents=True, exist_ok=True)
    (raw / "labelsTr").mkdir(exist_ok=True)


def write_png_2d(raw: Path, n: int = 10) -> None:
    """Grayscale microscopy-like PNGs of varying size with two blob classes."""
    _folders(raw)
    rng = np.random.RandomState(1)
    for i in range(n):
        h, w = 90 + 7 * (i % 4), 120 + 5 * (i % 3)
        yy, xx = np.mgrid[:h, :w]
        label = np.zeros((h, w), np.uint8)
        for value in (1, 2):
            cy, cx, r = rng.uniform(20, h - 20), rng.uniform(20, w - 20), rng.uniform(8, 16)
            label[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = value
        image = np.clip(60 + 80 * label + rng.normal(0, 15, (h, w)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(raw / "imagesTr" / f"cell_{i:03d}_0000.png")
        Image.fromarray(label).save(raw / "labelsTr" / f"cell_{i:03d}.png")
    _dataset_json(raw, ["microscopy"], {"background": 0, "nucleus": 1, "mitosis": 2}, n, ".png")


def write_oblique_two_channel(raw: Path, n: int = 8) -> None:
    """Anisotropic (4 mm slices), oblique, two MR channels of differing z extent and origin per case."""
    _folders(raw)
    for i in range(n):
        shape = (10 + i % 3, 48 + 4 * (i % 2), 44)
        spacing = (4.0 + 0.5 * (i % 2), 0.9, 0.9)
        image, label = synthetic_case(100 + i, shape=shape, spacing=spacing)
        second = np.sqrt(np.abs(image)) * 3 + np.random.RandomState(i).normal(0, 2, shape)
        theta = np.deg2rad(20 + 3 * i)
        direction = [np.cos(theta), -np.sin(theta), 0.0, np.sin(theta), np.cos(theta), 0.0, 0.0, 0.0, 1.0]
        for array, name in (
            (image, f"imagesTr/mr_{i:03d}_0000.nii.gz"),
            (second.astype(np.float32), f"imagesTr/mr_{i:03d}_0001.nii.gz"),
            (label, f"labelsTr/mr_{i:03d}.nii.gz"),
        ):
            itk = sitk.GetImageFromArray(array)
            itk.SetSpacing(spacing[::-1])
            itk.SetDirection(direction)
            itk.SetOrigin((10.0 * i, -5.0, 3.0))
            sitk.WriteImage(itk, str(raw / name), True)
    _dataset_json(raw, ["T2", "ADC"], {"background": 0, "organ": 1, "lesion": 2}, n, ".nii.gz")


def write_tiff_3d(raw: Path, n: int = 6) -> None:
    """3D TIFF stacks with ``{case}.json`` spacing sidecars (both for images and labels)."""
    import tifffile

    _folders(raw)
    for i in range(n):
        spacing = (2.0, 0.5, 0.5)
        image, label = synthetic_case(200 + i, shape=(14, 40, 36), spacing=spacing)
        image = np.clip(image + 1000, 0, 4000).astype(np.uint16)
        for folder, array, name in (("imagesTr", image, f"stack_{i:03d}_0000"), ("labelsTr", label, f"stack_{i:03d}")):
            tifffile.imwrite(raw / folder / f"{name}.tif", array)
            (raw / folder / f"{name}.json").write_text(json.dumps({"spacing": list(spacing)}))
    _dataset_json(raw, ["fluorescence"], {"background": 0, "organ": 1, "lesion": 2}, n, ".tif")


WRITERS = {"PNG2D": write_png_2d, "ObliqueTwoChannel": write_oblique_two_channel, "Tiff3D": write_tiff_3d}
