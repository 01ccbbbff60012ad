"""Truncation checks for formats whose SimpleITK reader silently zero-fills missing voxels.

ITK's NIfTI and GIPL readers accept a file that ends early (a partial download or copy) and return an
image whose tail is zeros or garbage. These checks compare the file length with the length the header
promises; they are cheap (a header read plus, for ``.nii.gz``, the gzip trailer).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import SimpleITK as sitk

from autoseg.errors import ImageIOError

_NIFTI1_HEADER = 348
_NIFTI2_HEADER = 540
_GIPL_HEADER = 256
_GIPL_BIT_TYPE = 1
_CHUNK = 1 << 22


def check_complete(path: str | Path, image: sitk.Image) -> None:
    """Raise ImageIOError when a NIfTI or GIPL file holds fewer voxel bytes than its header declares."""
    name = Path(path).name.lower()
    if name.endswith((".nii", ".nii.gz")):
        check_nifti_complete(Path(path))
    elif name.endswith(".gipl"):
        check_gipl_complete(Path(path), image)


def check_nifti_complete(path: Path) -> None:
    """Compare the (uncompressed) NIfTI length with ``vox_offset + voxels * bitpix / 8``."""
    compressed = path.name.lower().endswith(".gz")
    try:
        header = _read_start(path, _NIFTI2_HEADER, compressed)
        expected = nifti_data_end(header)
    except (OSError, EOFError, zlib.error, struct.error, ValueError) as err:
        raise _truncated(path, f"unreadable NIfTI header ({err})") from err
    if expected is None:
        return
    if not compressed:
        actual = path.stat().st_size
    elif _gzip_trailer_size(path) == expected % 2**32:
        return
    else:  # trailer mismatch: truncated, or several gzip members; decompress to be sure
        actual = _gzip_stream_size(path)
    if actual < expected:
        raise _truncated(path, f"it holds {actual} bytes but its header needs {expected}")


def nifti_data_end(header: bytes) -> int | None:
    """The byte offset where a NIfTI-1/2 file's voxel data ends, or None when the header is not NIfTI."""
    for endian in "<>":
        size = struct.unpack(endian + "i", header[:4])[0]
        if size == _NIFTI1_HEADER:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            vox_offset = int(struct.unpack(endian + "f", header[108:112])[0])
            return _data_end(dims, bitpix, max(vox_offset, _NIFTI1_HEADER))
        if size == _NIFTI2_HEADER:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            vox_offset = struct.unpack(endian + "q", header[168:176])[0]
            return _data_end(dims, bitpix, max(vox_offset, _NIFTI2_HEADER))
    return None


def _data_end(dims: tuple[int, ...], bitpix: int, vox_offset: int) -> int | None:
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    voxels = 1
    for extent in dims[1 : ndim + 1]:
        voxels *= max(int(extent), 1)
    return vox_offset + voxels * bitpix // 8


def check_gipl_complete(path: Path, image: sitk.Image) -> None:
    """Compare the GIPL length with the 256-byte header plus the voxels SimpleITK decoded."""
    with open(path, "rb") as f:
        header = f.read(_GIPL_HEADER)
    if len(header) < 10 or struct.unpack(">H", header[8:10])[0] == _GIPL_BIT_TYPE:
        return
    voxel_bytes = image.GetNumberOfComponentsPerPixel() * image.GetSizeOfPixelComponent()
    expected = _GIPL_HEADER + image.GetNumberOfPixels() * voxel_bytes
    actual = path.stat().st_size
    if actual < expected:
        raise _truncated(path, f"it holds {actual} bytes but its header needs {expected}")


def _read_start(path: Path, n: int, compressed: bool) -> bytes:
    opener = gzip.open if compressed else open
    with opener(path, "rb") as f:
        data = f.read(n)
    if len(data) < _NIFTI1_HEADER:
        raise ValueError(f"only {len(data)} bytes")
    return data.ljust(n, b"\0")


def _gzip_trailer_size(path: Path) -> int:
    """ISIZE of the last gzip member: the uncompressed length modulo 2**32."""
    with open(path, "rb") as f:
        f.seek(-4, 2)
        return struct.unpack("<I", f.read(4))[0]


def _gzip_stream_size(path: Path) -> int:
    """Decompress everything; a stream that ends early or fails its CRC is reported as truncated."""
    total = 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                total += len(chunk)
    except (OSError, EOFError, zlib.error) as err:
        raise _truncated(path, f"the compressed data is incomplete or corrupt ({err})") from err
    return total


def _truncated(path: Path, detail: str) -> ImageIOError:
    return ImageIOError(
        f"Cannot read image {path}: the file is truncated or corrupt ({detail}). Copy or download it again."
    )
