"""Intensity normalization schemes, named and computed as in nnU-Net v2.

The result is always float32. Statistics are computed with numpy's float32 reductions on the array
exactly as it is passed (a strided view sums in a different order than a contiguous copy), which is
what makes the results agree bit for bit with nnU-Net when the caller passes the same view it does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

EPS = 1e-8
TARGET_DTYPE = np.float32

Normalizer = Callable[[np.ndarray, np.ndarray, "np.ndarray | None", bool, Mapping[str, Any]], np.ndarray]


@dataclass(frozen=True)
class NormalizationScheme:
    """One scheme: its nnU-Net class name, the function, and the use_mask_for_norm flag.

    ``run(image, out, seg, use_mask, props)`` reads statistics from the float32 ``image`` and writes
    the result into ``out`` (which may be ``image`` itself), returning ``out``.
    """

    name: str
    run: Normalizer
    leaves_pixels_outside_mask_at_zero_if_use_mask_for_norm_is_true: bool


def _zscore(image: np.ndarray, out: np.ndarray, seg: np.ndarray | None, use_mask: bool,
            props: Mapping[str, Any]) -> np.ndarray:
    """Per-image z-score; with ``use_mask`` only voxels with ``seg >= 0`` are used and changed."""
    if use_mask:
        if seg is None:
            raise ValueError("use_mask_for_norm is set but no seg (mask = seg >= 0) was given")
        mask = seg >= 0
        mean = image[mask].mean()
        std = image[mask].std()
        values = (image[mask] - mean) / max(std, EPS)
        if out is not image:
            out[...] = image
        out[mask] = values
        return out
    mean = image.mean()
    std = image.std()
    np.subtract(image, mean, out=out)
    out /= max(std, EPS)
    return out


def _ct(image: np.ndarray, out: np.ndarray, seg: np.ndarray | None, use_mask: bool,
        props: Mapping[str, Any]) -> np.ndarray:
    """Clip to the dataset's foreground [0.5, 99.5] percentiles, then apply its mean and std."""
    for key in ("mean", "std", "percentile_00_5", "percentile_99_5"):
        if key not in props:
            raise ValueError(f"CTNormalization needs the fingerprint intensity property '{key}'")
    # Python floats, as nnU-Net gets them from JSON: they act as float32 scalars on float32 arrays.
    mean, std = float(props["mean"]), float(props["std"])
    np.clip(image, float(props["percentile_00_5"]), float(props["percentile_99_5"]), out=out)
    out -= mean
    out /= max(std, EPS)
    return out


def _no_norm(image: np.ndarray, out: np.ndarray, seg: np.ndarray | None, use_mask: bool,
             props: Mapping[str, Any]) -> np.ndarray:
    """Only the cast to float32."""
    if out is not image:
        out[...] = image
    return out


def _rescale_to_01(image: np.ndarray, out: np.ndarray, seg: np.ndarray | None, use_mask: bool,
                   props: Mapping[str, Any]) -> np.ndarray:
    """Min-max rescaling to [0, 1]."""
    np.subtract(image, image.min(), out=out)
    out /= np.clip(out.max(), a_min=EPS, a_max=None)
    return out


def _rgb_to_01(image: np.ndarray, out: np.ndarray, seg: np.ndarray | None, use_mask: bool,
               props: Mapping[str, Any]) -> np.ndarray:
    """Divide 8-bit values by 255."""
    low, high = image.min(), image.max()
    if low < 0 or high > 255:
        raise ValueError(f"RGBTo01Normalization expects values in [0, 255] (uint8 RGB images); found [{low}, {high}]")
    np.divide(image, 255.0, out=out)
    return out


NORMALIZATION_SCHEMES: dict[str, NormalizationScheme] = {
    s.name: s
    for s in (
        NormalizationScheme("ZScoreNormalization", _zscore, True),
        NormalizationScheme("CTNormalization", _ct, False),
        NormalizationScheme("NoNormalization", _no_norm, False),
        NormalizationScheme("RescaleTo01Normalization", _rescale_to_01, False),
        NormalizationScheme("RGBTo01Normalization", _rgb_to_01, False),
    )
}

CHANNEL_NAME_TO_SCHEME: dict[str, str] = {
    "ct": "CTNormalization",
    "nonorm": "NoNormalization",
    "zscore": "ZScoreNormalization",
    "rescale_to_0_1": "RescaleTo01Normalization",
    "rgb_to_0_1": "RGBTo01Normalization",
}

DEFAULT_SCHEME = "ZScoreNormalization"


def normalization_scheme_for_channel_name(channel_name: str) -> str:
    """Scheme name for a dataset.json channel name (case-insensitive); unknown names give z-score."""
    return CHANNEL_NAME_TO_SCHEME.get(channel_name.casefold(), DEFAULT_SCHEME)


def leaves_pixels_outside_mask_at_zero(scheme_name: str) -> bool:
    """The scheme's ``leaves_pixels_outside_mask_at_zero_if_use_mask_for_norm_is_true`` flag."""
    return get_scheme(scheme_name).leaves_pixels_outside_mask_at_zero_if_use_mask_for_norm_is_true


def get_scheme(scheme_name: str) -> NormalizationScheme:
    """Look a scheme up by its nnU-Net class name."""
    try:
        return NORMALIZATION_SCHEMES[scheme_name]
    except KeyError:
        raise ValueError(f"Unknown normalization scheme '{scheme_name}'. Known: "
                         f"{', '.join(NORMALIZATION_SCHEMES)}") from None


def normalize(
    image: np.ndarray,
    scheme_name: str,
    seg: np.ndarray | None = None,
    use_mask_for_norm: bool = False,
    intensity_properties: Mapping[str, Any] | None = None,
    inplace: bool = False,
) -> np.ndarray:
    """Normalize one channel (z, y, x) with a named scheme, as nnU-Net's ``run`` does.

    Parameters
    ----------
    image : np.ndarray
        One channel. Its values are converted to float32 first.
    scheme_name : str
        Key of ``NORMALIZATION_SCHEMES``, e.g. ``"ZScoreNormalization"``.
    seg : np.ndarray or None
        Segmentation of the same shape; only ZScore with ``use_mask_for_norm`` uses it (``seg >= 0``).
    use_mask_for_norm : bool
        Restrict the z-score statistics and the change to the mask.
    intensity_properties : mapping or None
        Fingerprint properties of the channel (``mean``, ``std``, ``percentile_00_5``,
        ``percentile_99_5``), needed by CTNormalization.
    inplace : bool
        If True and ``image`` is already float32 it is overwritten (nnU-Net's behaviour, no copy).
        Otherwise ``image`` is left untouched. The numbers are the same either way.

    Returns
    -------
    np.ndarray
        float32 array of the same shape.
    """
    scheme = get_scheme(scheme_name)
    work = image.astype(TARGET_DTYPE, copy=False)
    out = work if (inplace or work is not image) else np.empty_like(work)
    return scheme.run(work, out, seg, bool(use_mask_for_norm), intensity_properties or {})
