"""Type aliases shared across the package (one definition each)."""

from __future__ import annotations

from collections.abc import Callable

#: ``progress(done, total)``: called as work advances (cases, windows, files).
ProgressCallback = Callable[[int, int], None]
#: ``progress(done, total, case)``: as :data:`ProgressCallback`, naming the case just finished.
CaseProgressCallback = Callable[[int, int, str], None]
#: A cross-validation fold: its index, or ``"all"`` (train on every case).
Fold = int | str
#: An RGB colour, each component in [0, 1].
Color = tuple[float, float, float]
