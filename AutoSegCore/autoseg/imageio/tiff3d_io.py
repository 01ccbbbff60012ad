"""Reader/writer for 3D TIFF stacks, as nnU-Net's ``Tiff3DIO``.

TIFF metadata is ignored; the spacing comes from a JSON sidecar ``{"spacing": [sz, sy, sx]}`` in
array-axis order (the order of the returned array, no reversal). The sidecar drops the channel
suffix: ``imagesTr/case_0000.tif`` -> ``imagesTr/case.json``, ``labelsTr/case.tif`` ->
``labelsTr/case.json``. Without a sidecar the spacing is ``(1, 1, 1)`` (with a warning).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.errors import ImageIOError
from autoseg.imageio.base import (
    ImageProperties,
    ImageReaderWriter,
    check_same,
    matching_ending,
    require_files,
    segmentation_dtype,
    stack_channels,
    write_file_atomically,
)
from autoseg.utils.files import save_json

logger = logging.getLogger(__name__)

DEFAULT_SPACING = (1, 1, 1)
_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")


class Tiff3DIO(ImageReaderWriter):
    """3D TIFF stacks ``(z, y, x)``, spacing from a ``{case}.json`` sidecar. Use NaturalImage2DIO for 2D."""

    supported_file_endings = (".tif", ".tiff")

    def read_images(self, image_files: Sequence[str | Path]) -> tuple[np.ndarray, ImageProperties]:
        require_files(image_files, type(self).__name__)
        images = [read_stack(path, self.supported_file_endings)[None] for path in image_files]
        check_same([a.shape for a in images], "shape", image_files)
        spacing = read_spacing_sidecar(image_sidecar_path(image_files[0]), image_files)
        return stack_channels(images), {"spacing": spacing}

    def read_seg(self, seg_file: str | Path) -> tuple[np.ndarray, ImageProperties]:
        seg = read_stack(seg_file, self.supported_file_endings)[None]
        spacing = read_spacing_sidecar(seg_sidecar_path(seg_file), [seg_file])
        return stack_channels([seg]), {"spacing": spacing}

    def write_seg(self, seg: np.ndarray, output_file: str | Path, properties: ImageProperties) -> None:
        if seg.ndim != 3:
            raise ValueError(
                f"{type(self).__name__}.write_seg expects a (z, y, x) array, got shape {seg.shape}."
            )
        if matching_ending(output_file, self.supported_file_endings) is None:
            raise ImageIOError(f"Cannot write {output_file}: Tiff3DIO writes .tif/.tiff files only.")
        data = seg.astype(segmentation_dtype(seg), copy=False)
        try:
            write_file_atomically(output_file, lambda tmp: _write_stack(data, tmp), Path(output_file).suffix)
            save_json({"spacing": properties["spacing"]}, seg_sidecar_path(output_file))
        except (OSError, ValueError, TypeError) as err:
            raise ImageIOError(f"Cannot write segmentation {output_file}: {err}") from err


def read_stack(path: str | Path, endings: Sequence[str]) -> np.ndarray:
    """The ``(z, y, x)`` pixel array of a 3D TIFF."""
    if matching_ending(path, endings) is None:
        raise ImageIOError(
            f"Cannot read {path} with Tiff3DIO: only {', '.join(endings)} files are supported."
        )
    try:
        import tifffile

        array = np.asarray(tifffile.imread(str(path)))
    except MemoryError:
        raise
    except Exception as err:  # every decoder failure means: this file cannot be read as a TIFF stack
        raise ImageIOError(f"Cannot read TIFF {path}: {err}. The file may be truncated or corrupt.") from err
    if array.ndim != 3:
        raise ImageIOError(
            f"{path} has {array.ndim} dimensions (shape {array.shape}); Tiff3DIO reads 3D stacks (z, y, x) "
            f"only. Use NaturalImage2DIO for 2D images."
        )
    return array


def image_sidecar_path(image_file: str | Path) -> Path:
    """``case_0000.tif`` -> ``case.json`` in the same folder."""
    path = Path(image_file)
    stem = path.name[: -len(Path(path.name).suffix)]
    if _CHANNEL_SUFFIX.search(stem):
        stem = stem[:-5]
    else:
        logger.warning(
            "Image file %s has no _XXXX channel suffix; looking for its spacing in %s.json.", path, stem
        )
    return path.with_name(stem + ".json")


def seg_sidecar_path(seg_file: str | Path) -> Path:
    """``case.tif`` -> ``case.json`` in the same folder."""
    path = Path(seg_file)
    return path.with_name(path.name[: -len(path.suffix)] + ".json")


def read_spacing_sidecar(sidecar: Path, files: Sequence[str | Path]) -> Any:
    """The spacing in ``sidecar`` (array-axis order), or ``(1, 1, 1)`` with a warning when there is none."""
    if not sidecar.is_file():
        logger.warning(
            'No spacing file %s for %s; assuming spacing (1, 1, 1). Write {"spacing": [sz, sy, sx]} there '
            "if the voxels are not isotropic 1 mm.",
            sidecar,
            ", ".join(str(f) for f in files),
        )
        return DEFAULT_SPACING
    try:
        with open(sidecar, encoding="utf-8") as f:
            spacing = json.load(f)["spacing"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ImageIOError(
            f'Cannot read the spacing file {sidecar}: {err!r}. Expected {{"spacing": [sz, sy, sx]}}.'
        ) from err
    _check_spacing(spacing, sidecar)
    return spacing


def _check_spacing(spacing: Any, sidecar: Path) -> None:
    valid = (
        isinstance(spacing, list)
        and len(spacing) == 3
        and all(isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 for s in spacing)
    )
    if not valid:
        raise ImageIOError(
            f"The spacing file {sidecar} has spacing {spacing!r}; expected three positive numbers, one per "
            f"axis of the stack in array order (z, y, x)."
        )


def _write_stack(data: np.ndarray, path: Path) -> None:
    import tifffile

    tifffile.imwrite(str(path), data=data, compression="zlib", photometric="minisblack")
