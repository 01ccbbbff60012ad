"""Download a model zip from a URL and install it (``nnUNetv2_download_pretrained_model_by_url``).

The download streams into a temporary file next to nnUNet_results (never into memory), shows
progress, stops at the same size limit the installer enforces, and is then installed with every
check of :func:`install_model_zip`. The temporary file is removed whatever happens.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from autoseg.errors import ModelSharingError
from autoseg.model_sharing.install_zip import InstallResult, install_model_zip
from autoseg.model_sharing.safe_extract import ExtractionLimits

CHUNK_BYTES = 1 << 20
ALLOWED_SCHEMES = ("https://", "http://", "file://")


def download_file(url: str, target: Path, max_bytes: int, timeout: float = 60.0,
                  progress: Callable[[int, int | None], None] | None = None) -> int:
    """Stream ``url`` into ``target``; returns the number of bytes. Refuses more than ``max_bytes``."""
    if not url.lower().startswith(ALLOWED_SCHEMES):
        raise ModelSharingError(f"Cannot download {url!r}: only http(s):// and file:// URLs are supported.")
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ModelSharingError(f"Cannot download {url}: {getattr(err, 'reason', err)}. Check the URL and your "
                                f"network connection, or download the zip yourself and run "
                                f"`autoseg install_pretrained_model_from_zip FILE`.") from err
    with response:
        declared = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        total = int(declared) if declared and declared.isdigit() else None
        if total is not None and total > max_bytes:
            raise ModelSharingError(f"{url} is {total / 1e9:.1f} GB, more than the {max_bytes / 1e9:.1f} GB limit "
                                    f"(raise it with -max_size_gb if you trust the source).")
        written = 0
        with open(target, "wb") as out:
            while chunk := response.read(CHUNK_BYTES):
                written += len(chunk)
                if written > max_bytes:
                    raise ModelSharingError(f"{url} sent more than the {max_bytes / 1e9:.1f} GB limit; download "
                                            f"stopped (raise it with -max_size_gb if you trust the source).")
                out.write(chunk)
                if progress is not None:
                    progress(written, total)
    if total is not None and written != total:
        raise ModelSharingError(f"Download of {url} is incomplete ({written} of {total} bytes). Try again.")
    return written


def download_and_install(url: str, results_folder: str | os.PathLike[str], overwrite: bool = False,
                         limits: ExtractionLimits = ExtractionLimits(),
                         progress: Callable[[int, int | None], None] | None = None,
                         log: Callable[[str], None] = print) -> InstallResult:
    """Download the zip at ``url`` and install it into ``results_folder`` (nnUNet_results)."""
    results = Path(results_folder)
    results.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=".autoseg_download_", suffix=".zip", dir=results)
    os.close(handle)
    temporary = Path(name)
    try:
        size = download_file(url, temporary, limits.max_total_bytes, progress=progress)
        log(f"Downloaded {size / 1e6:.1f} MB from {url}")
        return install_model_zip(temporary, results, overwrite=overwrite, limits=limits, log=log)
    finally:
        temporary.unlink(missing_ok=True)
