"""Integrity checks that read the images: per case (run in worker processes) and across cases.

Every function here turns what it finds into :class:`Problem` objects; nothing raises for bad data.
Geometry is compared with nnU-Net's tolerance (``numpy.allclose`` defaults: relative 1e-5, absolute 1e-8).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.dataset.integrity.layout_checks import CaseFiles
from autoseg.dataset.integrity.nifti_nonfinite import nifti_nonfinite_count
from autoseg.dataset.integrity.report import Problem, error, warning
from autoseg.errors import AutoSegError

#: Voxels processed at a time when scanning label values (bounds the extra memory per worker).
CHUNK_VOXELS = 1 << 22
#: Label values below this are counted with bincount; others (rare) with unique.
BINCOUNT_LIMIT = 1 << 16

_READERS: dict[str, Any] = {}


@dataclass(frozen=True)
class CheckContext:
    """What a worker needs besides the files: how to read them and which label values are allowed."""

    reader_spec: dict[str, Any]
    declared_values: frozenset[int] | None  # None: dataset.json labels unusable, values not checked
    ignore_label: int | None = None


@dataclass
class FileInfo:
    """The geometry of one file, in array order (z, y, x), as the reader returns it."""

    path: Path
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...] | None
    direction: tuple[float, ...] | None
    affine: np.ndarray | None
    dimensionality: int
    num_channels: int

    def size_text(self) -> str:
        """Size as viewers show it: (x, y[, z])."""
        size = self.shape[::-1]
        return str(tuple(size[:2]) if self.dimensionality == 2 else tuple(size))

    def spacing_text(self) -> str:
        spacing = tuple(round(s, 6) for s in self.spacing[::-1])
        return str(spacing[:2] if self.dimensionality == 2 else spacing)


@dataclass
class CaseResult:
    """What a worker found in one case."""

    identifier: str
    problems: list[Problem] = field(default_factory=list)
    dimensionality: int | None = None
    reference_file: Path | None = None
    label_counts: dict[int, int] | None = None  # None when the label could not be read


# ------------------------------------------------------------------------------------------ reading
def reader_for(spec: dict[str, Any]) -> Any:
    """The dataset's reader/writer, created once per process."""
    from autoseg.imageio.registry import reader_writer_for_dataset

    key = json.dumps(spec, sort_keys=True, default=str)
    if key not in _READERS:
        _READERS[key] = reader_writer_for_dataset(spec)
    return _READERS[key]


def read_file(read, path: Path, case: str, problems: list[Problem]) -> tuple[np.ndarray, dict] | None:
    """``read([path])`` or ``read(path)``; a failure becomes an error naming the file."""
    try:
        return read(path)
    except MemoryError:
        problems.append(
            error(
                f"{path.name} is too large to read into memory on this machine",
                "Run the check with fewer processes (-np) or on a machine with more RAM.",
                case,
                path,
            )
        )
    except AutoSegError as err:
        problems.append(
            error(
                f"{path.name} cannot be read: {_without_path(str(err), path)}",
                "Re-export or re-convert the file; check that it is complete (not truncated).",
                case,
                path,
            )
        )
    except Exception as err:
        problems.append(
            error(
                f"{path.name} cannot be read ({type(err).__name__}: {err})",
                "Re-export or re-convert the file; check that it is complete (not truncated).",
                case,
                path,
            )
        )
    return None


def _without_path(text: str, path: Path) -> str:
    """The reader's message without the full path it repeats (the report already names the file)."""
    return text.replace(f"Cannot read image {path}: ", "").replace(str(path), path.name)


def file_info(path: Path, array: np.ndarray, props: dict[str, Any]) -> FileInfo:
    sitk_stuff = props.get("sitk_stuff") or {}
    nib_stuff = props.get("nibabel_stuff") or {}
    spacing = tuple(float(s) for s in props["spacing"])
    if "spacing" in sitk_stuff:
        dimensionality = len(sitk_stuff["spacing"])
    else:
        dimensionality = 2 if array.shape[1] == 1 and spacing[0] >= 999 else 3
    affine = nib_stuff.get("original_affine")
    return FileInfo(
        path=path,
        shape=tuple(array.shape[1:]),
        spacing=spacing,
        origin=tuple(sitk_stuff["origin"]) if "origin" in sitk_stuff else None,
        direction=tuple(sitk_stuff["direction"]) if "direction" in sitk_stuff else None,
        affine=np.asarray(affine) if affine is not None else None,
        dimensionality=dimensionality,
        num_channels=int(array.shape[0]),
    )


# ------------------------------------------------------------------------------------ per-case checks
def check_case(files: CaseFiles, ctx: CheckContext) -> CaseResult:
    """Read every file of a case and report what is wrong with their content and geometry."""
    case = files.identifier
    result = CaseResult(case)
    reader = reader_for(ctx.reader_spec)
    images: list[FileInfo] = []
    for _, path in files.images:
        data = read_file(lambda p: reader.read_images([p]), path, case, result.problems)
        if data is not None:
            images.append(file_info(path, data[0], data[1]))
            result.problems.extend(image_content_problems(case, path, data[0]))
            del data
    for other in images[1:]:
        result.problems.extend(geometry_problems(case, images[0], other, "channel"))
    if images:
        result.dimensionality, result.reference_file = images[0].dimensionality, images[0].path
    if files.label is not None:
        data = read_file(reader.read_seg, files.label, case, result.problems)
        if data is not None:
            label = file_info(files.label, data[0], data[1])
            if images:
                result.problems.extend(geometry_problems(case, images[0], label, "label"))
            elif result.dimensionality is None:
                result.dimensionality, result.reference_file = label.dimensionality, label.path
            result.label_counts = label_value_problems(case, files.label, data[0], ctx, result.problems)
    return result


def image_content_problems(case: str, path: Path, array: np.ndarray) -> list[Problem]:
    """Several channels in one file, NaN/Inf voxels, constant images."""
    problems = []
    if array.shape[0] > 1:
        problems.append(
            error(
                f"{path.name} holds {array.shape[0]} channels in one file (a 4D image); "
                f"each file must hold one channel",
                "Split it into {case}_0000, {case}_0001, ... files (convert_MSD_dataset does this "
                "for Decathlon data) and declare each channel in 'channel_names'.",
                case,
                path,
            )
        )
    finite = np.isfinite(array)
    fix = (
        "Replace them with a meaningful intensity (e.g. the background value) before training, e.g. "
        "numpy.nan_to_num on the array and write the image back."
    )
    if not finite.all():
        n_nan = int(np.count_nonzero(np.isnan(array)))
        n_inf = int(array.size - np.count_nonzero(finite)) - n_nan
        problems.append(
            error(
                f"{path.name} contains {n_nan} NaN and {n_inf} infinite voxel value(s) (of "
                f"{array.size}); expected finite intensities",
                fix,
                case,
                path,
            )
        )
    elif hidden := nifti_nonfinite_count(path):
        problems.append(
            error(
                f"{path.name} stores {hidden} NaN/infinite voxel value(s) (of {array.size}), which "
                f"the NIfTI reader silently turns into 0; expected finite intensities",
                fix,
                case,
                path,
            )
        )
    elif array.size and array.min() == array.max():
        problems.append(
            warning(
                f"{path.name} is constant (every voxel is {float(array.flat[0])}); an empty or "
                f"failed conversion?",
                "Check the image in a viewer and re-export it.",
                case,
                path,
            )
        )
    return problems


def _differs(a: Any, b: Any) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape != b.shape or not np.allclose(a, b)


_RESAMPLE = {
    "label": "Resample the label onto the image grid (nearest neighbour) or re-export it from the image "
    "geometry.",
    "channel": "Resample all channels of the case onto one reference image (e.g. channel 0).",
}
_ALIGN = {
    "label": "Check in a viewer that image and label are aligned; if they are, copy the image geometry into "
    "the label file.",
    "channel": "Check in a viewer that the channels are aligned; if they are, copy the geometry of "
    "channel 0.",
}


def geometry_problems(case: str, ref: FileInfo, other: FileInfo, kind: str) -> list[Problem]:
    """Shape and spacing (errors), origin, direction and affine (warnings) of ``other`` against ``ref``.

    ``kind`` is "label" (``other`` is the label, ``ref`` the first channel) or "channel".
    """
    what = "the label" if kind == "label" else "this channel"
    mismatch = None
    if other.shape != ref.shape:
        mismatch = f"size {other.size_text()} but {ref.path.name} has size {ref.size_text()}"
    elif _differs(other.spacing, ref.spacing):
        mismatch = f"spacing {other.spacing_text()} but {ref.path.name} has {ref.spacing_text()}"
    problems = []
    if mismatch:
        aspect = mismatch.split(" ", 1)[0]
        message = f"{other.path.name} has {mismatch}; {what} must have the same {aspect} as the image"
        problems.append(error(message, _RESAMPLE[kind], case, other.path))
    for name in ("origin", "direction", "affine"):
        mine, theirs = getattr(other, name), getattr(ref, name)
        if mine is not None and theirs is not None and _differs(mine, theirs):
            message = f"{other.path.name} has {name} {_short(mine)} but {ref.path.name} has {_short(theirs)}"
            problems.append(warning(message, _ALIGN[kind], case, other.path))
    if kind == "label" and other.num_channels > 1:
        message = (
            f"{other.path.name} holds {other.num_channels} volumes; a label file must be one volume of "
            f"integer label values"
        )
        problems.append(
            error(message, "Merge the masks into one label map (one value per class).", case, other.path)
        )
    return problems


def _short(values: Any) -> str:
    return str([round(float(v), 4) for v in np.asarray(values, dtype=float).ravel()])


def count_values(seg: np.ndarray) -> tuple[dict[int, int], int, list[float]]:
    """``{value: voxels}`` of the finite integer values, the number of NaN/Inf voxels, and a few
    non-integer values; processed in chunks to bound memory."""
    counts: dict[int, int] = {}
    n_nonfinite, fractional = 0, []
    flat = seg.reshape(-1)
    for start in range(0, flat.size, CHUNK_VOXELS):
        chunk = flat[start : start + CHUNK_VOXELS]
        finite = np.isfinite(chunk)
        if not finite.all():
            n_nonfinite += int(chunk.size - np.count_nonzero(finite))
            chunk = chunk[finite]
        ints = chunk.astype(np.int64)
        exact = ints == chunk
        if not exact.all():
            fractional.extend(np.unique(chunk[~exact])[:5].tolist())
            ints = ints[exact]
        if ints.size == 0:
            continue
        if ints.min() >= 0 and ints.max() < BINCOUNT_LIMIT:
            binned = np.bincount(ints)
            values = np.flatnonzero(binned)
            pairs = zip(values.tolist(), binned[values].tolist(), strict=True)
        else:
            uniq, n = np.unique(ints, return_counts=True)
            pairs = zip(uniq.tolist(), n.tolist(), strict=True)
        for value, n_vox in pairs:
            counts[value] = counts.get(value, 0) + n_vox
    return counts, n_nonfinite, sorted(set(fractional))[:5]


def label_value_problems(
    case: str, path: Path, seg: np.ndarray, ctx: CheckContext, problems: list[Problem]
) -> dict[int, int]:
    """Append problems about the values of a label file; return its ``{value: voxels}``."""
    counts, n_nonfinite, fractional = count_values(seg)
    n_nonfinite = n_nonfinite or nifti_nonfinite_count(path) or 0
    if n_nonfinite:
        problems.append(
            error(
                f"{path.name} contains {n_nonfinite} NaN/infinite voxel(s); expected integer labels",
                "Re-export the label map with an integer pixel type.",
                case,
                path,
            )
        )
    if fractional:
        problems.append(
            error(
                f"{path.name} contains non-integer values (e.g. {fractional}); expected integer label values",
                "Re-export the label map with an integer pixel type (resampling "
                "a label must use nearest-neighbour interpolation).",
                case,
                path,
            )
        )
    declared = ctx.declared_values
    if declared is not None:
        undeclared = sorted(set(counts) - declared)
        if undeclared:
            found = ", ".join(f"{v} ({counts[v]} voxels)" for v in undeclared[:20])
            problems.append(
                error(
                    f"{path.name} contains label value(s) not declared in dataset.json: {found}; "
                    f"declared values: {sorted(declared)}",
                    "Add the missing classes to 'labels' in dataset.json (values must stay "
                    "consecutive), or relabel those voxels in the file.",
                    case,
                    path,
                )
            )
    foreground = set(counts) - {0, ctx.ignore_label}
    if counts and not foreground:
        only = "the ignore label" if set(counts) == {ctx.ignore_label} else "background"
        problems.append(
            warning(
                f"{path.name} contains only {only}: the case has no foreground voxels",
                "Fine for cases without the structure; otherwise the label export failed.",
                case,
                path,
            )
        )
    return counts


def run_case(index: int, files: CaseFiles, ctx: CheckContext, marker_dir: str | None = None) -> CaseResult:
    """Worker entry point: mark task ``index`` as started (to find a case that kills its worker), check it."""
    if marker_dir is not None:
        (Path(marker_dir) / str(index)).touch()
    try:
        return check_case(files, ctx)
    except Exception as err:
        return CaseResult(
            files.identifier,
            [
                error(
                    f"checking this case failed unexpectedly ({type(err).__name__}: {err})",
                    "Check the case's files in a viewer; report the error if they look fine.",
                    files.identifier,
                )
            ],
        )


# ------------------------------------------------------------------------------------ across cases
def dimensionality_problems(results: list[CaseResult]) -> list[Problem]:
    """Cases whose images are 2D when most are 3D, or the other way round."""
    by_dim: dict[int, list[CaseResult]] = {}
    for result in results:
        if result.dimensionality is not None:
            by_dim.setdefault(result.dimensionality, []).append(result)
    if len(by_dim) < 2:
        return []
    majority = max(by_dim, key=lambda d: (len(by_dim[d]), d))
    problems = []
    for dim, cases in sorted(by_dim.items()):
        if dim == majority:
            continue
        for result in cases:
            name = result.reference_file.name if result.reference_file else result.identifier
            problems.append(
                error(
                    f"{name} is {dim}D but {len(by_dim[majority])} other case(s) are {majority}D; a dataset "
                    f"must be all 2D or all 3D",
                    f"Convert the {dim}D cases to {majority}D (or the other way round), or move them to "
                    f"their own dataset.",
                    result.identifier,
                    result.reference_file,
                )
            )
    return problems


def label_usage_problems(
    results: list[CaseResult], labels: dict[str, Any], ignore_label: int | None, source: Path | None
) -> list[Problem]:
    """Declared classes (and the ignore label) that no label file contains. Needs every label read."""
    if not results or any(r.label_counts is None for r in results):
        return []
    present = {value for r in results if r.label_counts is not None for value in r.label_counts}
    problems = []
    absent = [
        f"{name} ({value})"
        for name, value in labels.items()
        if name not in ("background", "ignore")
        and not present.intersection(value if isinstance(value, tuple) else (value,))
    ]
    if absent:
        problems.append(
            warning(
                f"{len(absent)} declared label(s) occur in no label file: {', '.join(absent)}",
                "A class that never occurs cannot be learned: check the label export, or remove "
                "the class from dataset.json (renumbering the others and the files).",
                file=source,
            )
        )
    if ignore_label is not None and ignore_label not in present:
        problems.append(
            warning(
                f"the ignore label ({ignore_label}) is declared but no label file contains it, so "
                f"every voxel counts as annotated",
                'Remove "ignore" from the labels if the annotations are complete; otherwise mark '
                "the unannotated voxels with it.",
                file=source,
            )
        )
    return problems
