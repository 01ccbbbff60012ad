"""Per-voxel uncertainty and per-case disagreement from the probabilities of several ensemble members.

Pure numpy. A *member* is one fold's prediction (or, with a single fold, one mirrored TTA copy); its
probabilities are ``(c, z, y, x)`` float32 on the input's voxel grid: softmax over labels, or one sigmoid per
region for region-based models (``has_regions``). Members are added one at a time to an
:class:`EnsembleAccumulator`, so only the running sum and each member's hard prediction are kept in memory.

Formulas (``p̄`` the members' mean probabilities, ``C`` the number of channels):

* normalised entropy, labels: ``H = -Σ_c p̄_c ln p̄_c / ln C`` (0: certain, 1: uniform over all labels);
  regions: the mean over region channels of the binary entropy ``-(p ln p + (1-p) ln(1-p)) / ln 2``.
* hard prediction: argmax over labels; regions: ``p > 0.5`` per region channel.
* foreground Dice of two hard predictions: ``2|A∩B| / (|A|+|B|)`` per foreground label (region), averaged
  over the labels (regions) present in either; 1 when neither has any foreground (they agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import entr


def normalised_entropy(probabilities: np.ndarray, has_regions: bool = False) -> np.ndarray:
    """Per-voxel entropy of ``(c, ...)`` probabilities scaled to [0, 1], float32 (see the module docstring)."""
    channels = probabilities.shape[0]
    entropy = np.zeros(probabilities.shape[1:], dtype=np.float32)
    if has_regions:
        for channel in probabilities:
            p = np.clip(channel, 0.0, 1.0)
            entropy += entr(p) + entr(1.0 - p)
        entropy /= np.float32(channels * np.log(2.0))
    elif channels > 1:
        for channel in probabilities:  # channel by channel: one extra volume of memory, not c
            entropy += entr(np.clip(channel, 0.0, 1.0))
        entropy /= np.float32(np.log(channels))
    return np.clip(entropy, 0.0, 1.0, out=entropy)


def hard_prediction(probabilities: np.ndarray, has_regions: bool = False) -> np.ndarray:
    """Labels: the argmax label map (uint8/uint16); regions: the ``(r, ...)`` boolean masks ``p > 0.5``."""
    if has_regions:
        return probabilities > 0.5
    dtype = np.uint8 if probabilities.shape[0] <= 256 else np.uint16
    return probabilities.argmax(0).astype(dtype)


def foreground_mask(prediction: np.ndarray, has_regions: bool = False) -> np.ndarray:
    """Voxels a hard prediction calls foreground (any label > 0; any region)."""
    return np.asarray(prediction.any(0) if has_regions else prediction > 0)


def foreground_dice(a: np.ndarray, b: np.ndarray, num_channels: int, has_regions: bool = False) -> np.ndarray:
    """Dice per foreground label (region) of two hard predictions; NaN where absent from both."""
    if has_regions:
        axes = tuple(range(1, a.ndim))
        intersection = np.logical_and(a, b).sum(axes)
        sizes = a.sum(axes) + b.sum(axes)
    else:
        counts_a = np.bincount(a.ravel(), minlength=num_channels)
        counts_b = np.bincount(b.ravel(), minlength=num_channels)
        intersection = np.bincount(a[a == b].ravel(), minlength=num_channels)[1:]
        sizes = counts_a[1:] + counts_b[1:]
    dice = np.full(sizes.shape, np.nan)
    present = sizes > 0
    dice[present] = 2.0 * intersection[present] / sizes[present]
    return dice


def mean_foreground_dice(a: np.ndarray, b: np.ndarray, num_channels: int, has_regions: bool = False) -> float:
    """Mean of :func:`foreground_dice` over the labels (regions) present; 1.0 when nothing is present."""
    dice = foreground_dice(a, b, num_channels, has_regions)
    return float(np.nanmean(dice)) if np.isfinite(dice).any() else 1.0


def disagreement(members: Sequence[np.ndarray], ensemble: np.ndarray, num_channels: int,
                 has_regions: bool = False) -> float | None:
    """``1 - mean_m Dice(member m, ensemble)`` over the members' hard predictions; None with fewer than two."""
    if len(members) < 2:
        return None
    dice = [mean_foreground_dice(m, ensemble, num_channels, has_regions) for m in members]
    return float(1.0 - np.mean(dice))


@dataclass
class CaseUncertainty:
    """What the members say about one case.

    ``disagreement``: see :func:`disagreement` (None with one member). ``mean_entropy``: mean
    :func:`normalised_entropy` of the mean probabilities over ``foreground_voxels``, the voxels some member
    predicts as foreground; when none does, over all ``total_voxels`` (``no_foreground`` is then True).
    ``mean_dice`` is the mean member-vs-ensemble Dice (None with one member). ``entropy_map`` is the
    per-voxel entropy (float32, input grid) when it was asked for.
    """

    members: int
    disagreement: float | None
    mean_dice: float | None
    mean_entropy: float
    foreground_voxels: int
    total_voxels: int
    no_foreground: bool
    entropy_map: np.ndarray | None = None


class EnsembleAccumulator:
    """Collect members' probabilities one at a time; :meth:`result` gives the case's :class:`CaseUncertainty`."""

    def __init__(self, has_regions: bool = False) -> None:
        self.has_regions = has_regions
        self._sum: np.ndarray | None = None
        self._predictions: list[np.ndarray] = []
        self._any_foreground: np.ndarray | None = None

    def add(self, probabilities: np.ndarray) -> None:
        """Add one member's ``(c, ...)`` probabilities (all members on the same grid)."""
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if self._sum is None:
            self._sum = probabilities.copy()
        elif self._sum.shape != probabilities.shape:
            raise ValueError(f"member probabilities of shape {probabilities.shape}, expected {self._sum.shape}")
        else:
            self._sum += probabilities
        prediction = hard_prediction(probabilities, self.has_regions)
        self._predictions.append(prediction)
        foreground = foreground_mask(prediction, self.has_regions)
        self._any_foreground = foreground if self._any_foreground is None else self._any_foreground | foreground

    @property
    def members(self) -> int:
        return len(self._predictions)

    def mean_probabilities(self) -> np.ndarray:
        if self._sum is None:
            raise ValueError("no member was added")
        return self._sum / np.float32(self.members)

    def result(self, keep_map: bool = False) -> CaseUncertainty:
        """Scores of the members added so far (see :class:`CaseUncertainty`)."""
        mean = self.mean_probabilities()
        channels = mean.shape[0]
        entropy = normalised_entropy(mean, self.has_regions)
        ensemble = hard_prediction(mean, self.has_regions)
        del mean
        assert self._any_foreground is not None
        foreground = int(self._any_foreground.sum())
        region = entropy[self._any_foreground] if foreground else entropy
        score = disagreement(self._predictions, ensemble, channels, self.has_regions)
        return CaseUncertainty(
            members=self.members,
            disagreement=score,
            mean_dice=None if score is None else 1.0 - score,
            mean_entropy=float(region.mean(dtype=np.float64)) if region.size else 0.0,
            foreground_voxels=foreground,
            total_voxels=int(entropy.size),
            no_foreground=foreground == 0,
            entropy_map=entropy if keep_map else None,
        )
