"""Count NaN/Inf voxels stored in a floating-point NIfTI file, straight from its bytes.

ITK's NIfTI reader (niftilib's ``nifti_read_buffer``) silently replaces NaN and infinite float values
by 0, so a check on the array SimpleITK returns never sees them -- nor does nnU-Net's. Training would
then learn from zeros the user never wrote. This module reads the voxel data itself (NIfTI-1 and -2,
plain or gzip'ed, float32/float64) to find them.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 and float64
_CHUNK_BYTES = 1 << 24


def _header_fields(header: bytes) -> tuple[str, int, int, int] | None:
    """(endianness, datatype, voxel count, data offset) of a NIfTI-1/2 header, or None if it is not one."""
    for endian in "<>":
        size = struct.unpack(endian + "i", header[:4])[0]
        if size == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            datatype = struct.unpack(endian + "h", header[70:72])[0]
            offset = max(int(struct.unpack(endian + "f", header[108:112])[0]), 352)
        elif size == 540 and len(header) >= 540:
            datatype = struct.unpack(endian + "h", header[12:14])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = max(int(struct.unpack(endian + "q", header[168:176])[0]), 544)
        else:
            continue
        if not 1 <= dims[0] <= 7:
            return None
        count = 1
        for extent in dims[1 : dims[0] + 1]:
            count *= max(int(extent), 1)
        return endian, int(datatype), count, offset
    return None


def nifti_nonfinite_count(path: str | Path) -> int | None:
    """NaN/Inf voxels stored in a float NIfTI file; None when it is not a float NIfTI or cannot be parsed."""
    path = Path(path)
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return None
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            header = f.read(544)
            fields = _header_fields(header) if len(header) >= 348 else None
            if fields is None or fields[1] not in _FLOAT_TYPES:
                return None
            endian, datatype, count, offset = fields
            dtype = np.dtype(endian + _FLOAT_TYPES[datatype])
            f.seek(offset)
            return _count_nonfinite(f, dtype, count)
    except (OSError, EOFError, zlib.error, struct.error, ValueError):
        return None  # unreadable files are reported by the reader itself


def _count_nonfinite(stream, dtype: np.dtype, count: int) -> int:
    remaining, bad = count * dtype.itemsize, 0
    step = _CHUNK_BYTES - _CHUNK_BYTES % dtype.itemsize
    while remaining > 0:
        data = stream.read(min(step, remaining))
        if not data:
            break
        values = np.frombuffer(data[: len(data) - len(data) % dtype.itemsize], dtype=dtype)
        bad += int(values.size - np.count_nonzero(np.isfinite(values)))
        remaining -= len(data)
    return bad
