"""Choose the reader/writer for a dataset: by ``overwrite_image_reader_writer`` or by file ending.

Auto-detection follows nnU-Net's ``LIST_OF_IO_CLASSES`` order (NaturalImage2DIO, SimpleITKIO, Tiff3DIO,
NibabelIO, NibabelIOWithReorient) with the endings nnU-Net gives each class; endings only AutoSeg
supports (``.nhdr``, ``.mhd``, ``.seg.nrrd``, and ``.nii`` without nibabel) come after. Given an example
file, the first candidate that can actually read it wins, as in nnU-Net (this is how a 3D ``.tif``
stack ends up with Tiff3DIO rather than NaturalImage2DIO).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoseg.errors import DatasetError, ImageIOError
from autoseg.imageio.base import ImageReaderWriter, matching_ending
from autoseg.imageio.natural_image_io import NaturalImage2DIO
from autoseg.imageio.nibabel_io import NibabelIO, NibabelIOWithReorient
from autoseg.imageio.simpleitk_io import SimpleITKIO, SimpleITKIOWithReorient
from autoseg.imageio.tiff3d_io import Tiff3DIO

logger = logging.getLogger(__name__)

#: Reader/writers by the class names nnU-Net uses in ``dataset.json``/plans. The optional ones import their
#: libraries (nibabel, tifffile, Pillow) only when they read or write.
READER_WRITERS: dict[str, type[ImageReaderWriter]] = {
    cls.__name__: cls
    for cls in (SimpleITKIO, SimpleITKIOWithReorient, NaturalImage2DIO, Tiff3DIO, NibabelIO, NibabelIOWithReorient)
}

#: nnU-Net's auto-detection order (``nnunetv2.imageio.reader_writer_registry.LIST_OF_IO_CLASSES``).
AUTO_DETECTION_ORDER = ("NaturalImage2DIO", "SimpleITKIO", "Tiff3DIO", "NibabelIO", "NibabelIOWithReorient")
#: Selectable by name only, never auto-detected (as in nnU-Net).
NAME_ONLY = frozenset({"SimpleITKIOWithReorient"})


def register_reader_writer(name: str, cls: type[ImageReaderWriter]) -> None:
    """Add a reader/writer under the name used in ``overwrite_image_reader_writer``."""
    READER_WRITERS[name] = cls


def reader_writer_class_by_name(name: str) -> type[ImageReaderWriter]:
    """Look up a reader/writer by its nnU-Net class name (``SimpleITKIO``, ``Tiff3DIO``, ...)."""
    try:
        return READER_WRITERS[name]
    except KeyError:
        raise DatasetError(
            f"Unknown image reader/writer {name!r} (from 'overwrite_image_reader_writer' or the plans). "
            f"Known: {', '.join(READER_WRITERS)}."
        ) from None


def candidate_classes(file_ending: str) -> list[type[ImageReaderWriter]]:
    """The installed reader/writers for ``file_ending``, in auto-detection order."""
    ending = file_ending.lower()
    order = _detection_order()
    nnunet_pass = [cls for cls in order if ending in cls.auto_detect_endings()]
    autoseg_pass = [cls for cls in order if ending in cls.supported_file_endings and cls not in nnunet_pass]
    candidates = []
    for cls in nnunet_pass + autoseg_pass:
        if cls.is_available():
            candidates.append(cls)
        else:
            logger.debug(
                "Skipping %s for %s files: its optional dependency is not installed.", cls.__name__, ending
            )
    return candidates


def reader_writer_class_for_ending(file_ending: str) -> type[ImageReaderWriter]:
    """The first reader/writer that supports ``file_ending`` (case-insensitive), as nnU-Net picks it."""
    candidates = candidate_classes(file_ending)
    if not candidates:
        raise DatasetError(
            f"No image reader supports the file ending {file_ending!r}. Supported endings: "
            f"{', '.join(_all_endings())}. Convert the images or fix 'file_ending' in dataset.json."
        )
    return candidates[0]


def reader_writer_class_for_example(file_ending: str, example_file: str | Path) -> type[ImageReaderWriter]:
    """The first reader/writer for ``file_ending`` that can read ``example_file`` (nnU-Net's rule)."""
    candidates = candidate_classes(file_ending)
    if not candidates:
        reader_writer_class_for_ending(file_ending)  # raises the DatasetError naming the supported endings
    failures = []
    for cls in candidates:
        try:
            cls().read_images([example_file])
        except ImageIOError as err:
            logger.debug("%s cannot read %s: %s", cls.__name__, example_file, err)
            failures.append(f"  {cls.__name__}: {err}")
            continue
        return cls
    raise ImageIOError(
        f"No image reader can read {example_file} (file ending {file_ending!r}):\n" + "\n".join(failures)
    )


def reader_writer_for_dataset(dataset_json: Mapping[str, Any]) -> ImageReaderWriter:
    """Instantiate the reader/writer a dataset asks for (explicit name first, then its file ending)."""
    name = _explicit_name(dataset_json)
    if name:
        return reader_writer_class_by_name(name)()
    return reader_writer_class_for_ending(str(dataset_json["file_ending"]))()


def reader_writer_for_dataset_folder(
    dataset_json: Mapping[str, Any], example_file: str | Path
) -> ImageReaderWriter:
    """Like :func:`reader_writer_for_dataset`, but auto-detection picks the first reader that can read
    ``example_file`` (one of the dataset's images), as nnU-Net's planning does."""
    name = _explicit_name(dataset_json)
    if name:
        return reader_writer_class_by_name(name)()
    return reader_writer_class_for_example(str(dataset_json["file_ending"]), example_file)()


def reader_writer_for_file(path: str | Path) -> ImageReaderWriter:
    """Instantiate a reader/writer for one file by its (possibly double) extension.

    When several readers claim the ending (``.tif``, ``.nii.gz``), the file is read to pick one.
    """
    ending = matching_ending(path, _all_endings()) or Path(path).suffix
    candidates = candidate_classes(ending)
    if len(candidates) > 1:
        return reader_writer_class_for_example(ending, path)()
    return reader_writer_class_for_ending(ending)()


def _explicit_name(dataset_json: Mapping[str, Any]) -> str | None:
    name = dataset_json.get("overwrite_image_reader_writer")
    return str(name) if name and name != "None" else None


def _detection_order() -> list[type[ImageReaderWriter]]:
    """nnU-Net's classes in nnU-Net's order, then any other registered (plug-in) classes."""
    names = [n for n in AUTO_DETECTION_ORDER if n in READER_WRITERS]
    names += [n for n in READER_WRITERS if n not in AUTO_DETECTION_ORDER and n not in NAME_ONLY]
    return [READER_WRITERS[n] for n in names]


def _all_endings() -> list[str]:
    return sorted({e for cls in READER_WRITERS.values() for e in cls.supported_file_endings})
