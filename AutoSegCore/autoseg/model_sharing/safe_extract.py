"""Check and extract zip archives without ever writing outside the destination folder.

:func:`inspect_zip` reads only the central directory and refuses, before anything is written:
absolute paths, drive letters, ``..`` and empty components, backslashes, colons, control characters,
Windows-reserved names, symlinks and other special entries (the Unix mode kept in the external
attributes), encrypted entries, duplicate names (also case-insensitively), overlapping entries (the
"non-recursive zip bomb" trick), more uncompressed data than :class:`ExtractionLimits` allows and
entries compressed more than its ratio limit. :func:`extract_entries` then streams the checked entries
into a destination folder, counting the bytes actually produced, so a header that lies about sizes
cannot get past the limits either.
"""

from __future__ import annotations

import re
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autoseg.errors import ModelSharingError

MIB = 1024**2
GIB = 1024**3
_CHUNK = MIB
_LOCAL_HEADER_SIZE = 30  # fixed part of a zip local file header
_DRIVE = re.compile(r"^[A-Za-z]:")
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
)


@dataclass(frozen=True)
class ExtractionLimits:
    """What a zip may expand to.

    ``max_compression_ratio`` (uncompressed / compressed size) is checked for entries larger than
    ``ratio_check_min_bytes``; 0 disables it. Deflate cannot exceed about 1030:1, so the ratio limit
    mostly catches suspicious content; ``max_total_bytes`` is the hard cap.
    """

    max_total_bytes: int = 20 * GIB
    max_compression_ratio: float = 200.0
    ratio_check_min_bytes: int = 10 * MIB
    max_entries: int = 100_000


@dataclass(frozen=True)
class ZipEntry:
    """One checked entry: its ZipInfo and its path as safe components."""

    info: zipfile.ZipInfo
    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        return "/".join(self.parts)

    @property
    def is_dir(self) -> bool:
        return self.info.is_dir()

    @property
    def size(self) -> int:
        return self.info.file_size


def refuse(label: str, problem: str) -> ModelSharingError:
    """The error for an archive that is refused (nothing has been written when it is raised)."""
    return ModelSharingError(f"Refusing {label}: {problem}. Nothing was installed.")


def entry_parts(name: str) -> tuple[str, ...]:
    """The path components of an entry name, or ValueError saying why the name is unsafe."""
    if not name:
        raise ValueError("has an empty name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError("contains control characters")
    if "\\" in name:
        raise ValueError("contains a backslash (zip paths use '/'; a backslash can become a separator on Windows)")
    if name.startswith("/"):
        raise ValueError("is an absolute path")
    if _DRIVE.match(name):
        raise ValueError("starts with a drive letter")
    if ":" in name:
        raise ValueError("contains ':' (a drive or an NTFS stream on Windows)")
    parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
    for part in parts:
        if part in ("", "."):
            raise ValueError("has an empty or '.' path component")
        if part == "..":
            raise ValueError("contains '..' (it would be written outside the destination folder)")
        if part != part.rstrip(". "):
            raise ValueError(f"has a component ending with a dot or space ({part!r}), which Windows cannot store")
        if part.split(".")[0].lower() in _WINDOWS_RESERVED:
            raise ValueError(f"uses the reserved Windows device name {part!r}")
    return tuple(parts)


def entry_type_problem(info: zipfile.ZipInfo) -> str | None:
    """Why an entry is not a plain file or folder (symlink, device, ...), or None."""
    mode = info.external_attr >> 16
    if info.flag_bits & 0x1:
        return "is encrypted"
    if mode == 0:  # no Unix mode recorded (archives written on Windows): a file or, with '/', a folder
        return None
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"is a special file (mode {oct(stat.S_IFMT(mode))}), not a regular file or folder"
    if stat.S_ISDIR(mode) and not info.is_dir():
        return "is marked as a folder but its name does not end with '/'"
    return None


def inspect_zip(archive: zipfile.ZipFile, label: str, limits: ExtractionLimits = ExtractionLimits()) -> list[ZipEntry]:
    """Check every entry of ``archive``; ModelSharingError (naming ``label``) for the first problem."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise refuse(label, f"it has {len(infos)} entries (limit {limits.max_entries})")
    entries: list[ZipEntry] = []
    seen: dict[str, str] = {}
    total = 0
    for info in infos:
        name = info.orig_filename
        try:
            parts = entry_parts(name)
        except ValueError as err:
            raise refuse(label, f"entry {name!r} {err}") from None
        problem = entry_type_problem(info)
        if problem:
            raise refuse(label, f"entry {name!r} {problem}")
        key = "/".join(parts).casefold()
        if key in seen:
            raise refuse(
                label, f"entry {name!r} appears twice (also as {seen[key]!r}); which copy to install is ambiguous"
            )
        seen[key] = name
        total += info.file_size
        if total > limits.max_total_bytes:
            raise refuse(label, f"it expands to more than {_size(limits.max_total_bytes)} (limit; raise it with "
                         f"--max_size_gb if you trust this archive)")
        _check_ratio(info, label, limits)
        entries.append(ZipEntry(info, parts))
    _check_prefix_conflicts(entries, label)
    _check_overlaps(infos, label)
    return entries


def _check_ratio(info: zipfile.ZipInfo, label: str, limits: ExtractionLimits) -> None:
    if not limits.max_compression_ratio or info.file_size <= limits.ratio_check_min_bytes:
        return
    ratio = info.file_size / max(info.compress_size, 1)
    if ratio > limits.max_compression_ratio:
        raise refuse(
            label,
            f"entry {info.orig_filename!r} is compressed {ratio:.0f}:1 ({_size(info.file_size)} from "
            f"{_size(info.compress_size)}; limit {limits.max_compression_ratio:g}:1), as in a zip bomb (raise the "
            f"limit with --max_compression_ratio if you trust this archive)",
        )


def _check_prefix_conflicts(entries: Sequence[ZipEntry], label: str) -> None:
    """A file whose path is also used as a folder by another entry (``a`` and ``a/b``)."""
    files = {e.name.casefold(): e.name for e in entries if not e.is_dir}
    for entry in entries:
        for depth in range(1, len(entry.parts)):
            prefix = "/".join(entry.parts[:depth]).casefold()
            if prefix in files:
                raise refuse(label, f"entry {files[prefix]!r} is a file but {entry.name!r} uses it as a folder")


def _check_overlaps(infos: Sequence[zipfile.ZipInfo], label: str) -> None:
    spans = sorted((info.header_offset, info.header_offset + _LOCAL_HEADER_SIZE + _name_length(info)
                    + info.compress_size, info.orig_filename) for info in infos)
    for (_, end, name), (next_start, _, next_name) in zip(spans, spans[1:]):
        if next_start < end:
            raise refuse(label, f"entries {name!r} and {next_name!r} overlap in the archive (a zip-bomb technique)")


def _name_length(info: zipfile.ZipInfo) -> int:
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    try:
        return len(info.orig_filename.encode(encoding))
    except UnicodeEncodeError:
        return len(info.orig_filename.encode("utf-8"))


def extract_entries(
    archive: zipfile.ZipFile,
    entries: Sequence[ZipEntry],
    destination: Path,
    label: str,
    limits: ExtractionLimits = ExtractionLimits(),
) -> int:
    """Write the checked ``entries`` under ``destination`` (which must be empty); returns the bytes written.

    Files are created exclusively (never through an existing file or link); each entry may produce at
    most its declared size and the archive at most ``limits.max_total_bytes``.
    """
    destination = destination.resolve()
    written = 0
    for entry in entries:
        target = destination.joinpath(*entry.parts)
        if entry.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.resolve().is_relative_to(destination):
            raise refuse(label, f"entry {entry.name!r} would be written outside {destination}")
        written += _copy_entry(archive, entry, target, label, limits.max_total_bytes - written)
    return written


def _copy_entry(archive: zipfile.ZipFile, entry: ZipEntry, target: Path, label: str, budget: int) -> int:
    count = 0
    try:
        with archive.open(entry.info) as source, open(target, "xb") as sink:
            while chunk := source.read(_CHUNK):
                count += len(chunk)
                if count > entry.size:
                    raise refuse(label, f"entry {entry.name!r} holds more data than its header declares")
                if count > budget:
                    raise refuse(label, "it expands to more data than the size limit allows")
                sink.write(chunk)
    except ModelSharingError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError) as err:
        raise refuse(
            label,
            f"entry {entry.name!r} cannot be read ({type(err).__name__}: {err}); the archive is "
            f"corrupt or uses an unsupported compression",
        ) from err
    except OSError as err:
        raise ModelSharingError(
            f"Cannot write {target} while extracting {label}: {err}. Nothing was installed."
        ) from err
    return count


def _size(num_bytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "bytes" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.1f} GiB"
