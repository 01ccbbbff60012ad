"""Registers the non-SimpleITK readers (natural 2D images, 3D TIFF, nibabel) under nnU-Net's class names.

Imported lazily by the registry; nibabel itself is imported only when a nibabel reader is used.
"""

from __future__ import annotations

from autoseg.imageio.natural_image_io import NaturalImage2DIO
from autoseg.imageio.nibabel_io import NibabelIO, NibabelIOWithReorient
from autoseg.imageio.registry import register_reader_writer
from autoseg.imageio.tiff3d_io import Tiff3DIO

for _cls in (NaturalImage2DIO, Tiff3DIO, NibabelIO, NibabelIOWithReorient):
    register_reader_writer(_cls.__name__, _cls)
