"""Normalization schemes against nnU-Net v2's classes (the oracle): scheme names, flags and results,
bit for bit, for contiguous and strided (cropped) inputs of several dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from external_test_data import TEST_DATA as DATA

from autoseg.preprocessing.cropping import crop_to_nonzero, nonzero_mask
from autoseg.preprocessing.normalization import (
    NORMALIZATION_SCHEMES,
    leaves_pixels_outside_mask_at_zero,
    normalization_scheme_for_channel_name,
    normalize,
)

pytestmark = pytest.mark.oracle
nn_schemes = pytest.importorskip("nnunetv2.preprocessing.normalization.default_normalization_schemes")
nn_mapping = pytest.importorskip("nnunetv2.preprocessing.normalization.map_channel_name_to_normalization")

CT_PROPS = {"mean": 41.7, "std": 312.25, "percentile_00_5": -968.0, "percentile_99_5": 1203.5,
            "median": 30.0, "min": -1024.0, "max": 3071.0}


def theirs(image: np.ndarray, scheme: str, seg: np.ndarray | None, use_mask: bool, props: dict) -> np.ndarray:
    normalizer = getattr(nn_schemes, scheme)(use_mask_for_norm=use_mask, intensityproperties=props)
    return normalizer.run(image, seg)


def images() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (image (c, z, y, x) with a zero background, full-size seg: 0 inside the nonzero mask, -1 outside)."""
    rng = np.random.default_rng(0)
    mri = np.zeros((1, 18, 26, 22), dtype=np.float32)
    z, y, x = np.ogrid[:18, :26, :22]
    ball = (z - 9) ** 2 / 49 + (y - 13) ** 2 / 100 + (x - 11) ** 2 / 81 < 1
    mri[0][ball] = rng.gamma(2.0, 150.0, size=int(ball.sum()))
    ct = np.clip(rng.normal(40, 400, size=(1, 12, 20, 16)), -1024, 3071).astype(np.int16)
    rgb = rng.integers(0, 256, size=(1, 1, 24, 20)).astype(np.uint8)
    flat = np.full((1, 4, 5, 6), 7.0)  # std 0: the eps branch
    out = {"mri_float32": mri, "ct_int16": ct, "rgb_uint8_2d": rgb, "constant_float64": flat}
    return {name: (img, np.where(nonzero_mask(img)[None], 0, -1).astype(np.float32)) for name, img in out.items()}


IMAGES = images()


@pytest.mark.parametrize("name", ["CT", "ct", "Ct", "nonorm", "NoNorm", "zscore", "ZScore", "rescale_to_0_1",
                                  "RESCALE_TO_0_1", "rgb_to_0_1", "T2", "FLAIR", "", "ctx"])
def test_channel_name_mapping(name: str) -> None:
    assert normalization_scheme_for_channel_name(name) == nn_mapping.get_normalization_scheme(name).__name__


@pytest.mark.parametrize("scheme", list(NORMALIZATION_SCHEMES))
def test_flags_match(scheme: str) -> None:
    expected = getattr(nn_schemes, scheme).leaves_pixels_outside_mask_at_zero_if_use_mask_for_norm_is_true
    assert leaves_pixels_outside_mask_at_zero(scheme) is expected
    assert NORMALIZATION_SCHEMES[scheme].leaves_pixels_outside_mask_at_zero_if_use_mask_for_norm_is_true is expected


def _is_rgb(image: np.ndarray) -> bool:
    return bool(image.min() >= 0 and image.max() <= 255)


SCHEME_CASES = [
    (name, scheme, use_mask)
    for name, (image, _) in IMAGES.items()
    for scheme, use_mask in [
        ("ZScoreNormalization", False), ("ZScoreNormalization", True), ("CTNormalization", False),
        ("NoNormalization", False), ("RescaleTo01Normalization", False), ("RGBTo01Normalization", False),
    ]
    if scheme != "RGBTo01Normalization" or _is_rgb(image)  # RGB scaling is only defined for 0..255 images
]


@pytest.mark.parametrize("image_name,scheme,use_mask", SCHEME_CASES)
@pytest.mark.parametrize("layout", ["contiguous", "cropped_view"])
def test_normalize_matches_nnunet_bitwise(image_name: str, scheme: str, use_mask: bool, layout: str) -> None:
    image, seg = IMAGES[image_name]
    if layout == "cropped_view":
        # as in preprocessing: float32 copy, cropped view, one channel of it (a strided array)
        data, seg, _ = crop_to_nonzero(image.astype(np.float32), seg)
        channel = data[0]
    else:
        channel = image[0].copy()  # nnU-Net below overwrites float32 input
    before = channel.copy()
    ours = normalize(channel, scheme, seg[0], use_mask, CT_PROPS)
    np.testing.assert_array_equal(channel, before)  # not in place by default
    # nnU-Net on the very same array (it works in place on float32 input, so after ours)
    expected = theirs(channel, scheme, seg[0], use_mask, CT_PROPS)
    assert ours.dtype == np.float32 and ours.shape == channel.shape
    np.testing.assert_array_equal(ours, expected)


def test_inplace_overwrites_float32_input() -> None:
    image = IMAGES["mri_float32"][0][0].copy()
    result = normalize(image, "ZScoreNormalization", inplace=True)
    assert result is image
    assert abs(float(image.mean())) < 1e-5


def test_masked_zscore_leaves_outside_untouched() -> None:
    image, seg = IMAGES["mri_float32"]
    data, seg, _ = crop_to_nonzero(image.copy(), seg)
    out = normalize(data[0], "ZScoreNormalization", seg[0], True, {})
    outside = seg[0] < 0
    assert outside.any()
    np.testing.assert_array_equal(out[outside], data[0][outside])
    assert abs(float(out[~outside].mean())) < 1e-5 and abs(float(out[~outside].std()) - 1) < 1e-5


def test_real_ct_and_mri() -> None:
    sitk = pytest.importorskip("SimpleITK")
    ct_file = DATA / "CT_TotalSegExamples" / "imagesTr" / "ts_example_sm_0000.nii.gz"
    mri_file = DATA / "Hippocampus" / "imagesTr" / "hippocampus_001_0000.nii.gz"
    if not ct_file.is_file() or not mri_file.is_file():
        pytest.skip("shared data not available")
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(ct_file)))[None].astype(np.float32)
    fg = ct[ct > -500]
    props = {"mean": float(fg.mean()), "std": float(fg.std()), "percentile_00_5": float(np.percentile(fg, 0.5)),
             "percentile_99_5": float(np.percentile(fg, 99.5))}
    data, seg, _ = crop_to_nonzero(ct, None)
    np.testing.assert_array_equal(normalize(data[0], "CTNormalization", seg[0], False, props),
                                  theirs(data[0].copy(), "CTNormalization", seg[0], False, props))
    mri = sitk.GetArrayFromImage(sitk.ReadImage(str(mri_file)))[None].astype(np.float32)
    data, seg, _ = crop_to_nonzero(mri, None)
    for use_mask in (False, True):
        ours = normalize(data[0], "ZScoreNormalization", seg[0], use_mask, {})
        np.testing.assert_array_equal(ours, theirs(data[0], "ZScoreNormalization", seg[0], use_mask, {}))


def test_props_as_numpy_scalars_behave_like_json_floats() -> None:
    image = IMAGES["ct_int16"][0][0]
    as_numpy = {k: np.float64(v) for k, v in CT_PROPS.items()}
    np.testing.assert_array_equal(normalize(image, "CTNormalization", None, False, as_numpy),
                                  theirs(image, "CTNormalization", None, False, CT_PROPS))


@pytest.mark.parametrize("call", [
    lambda: normalize(np.ones((2, 2, 2)), "NoSuchNormalization"),
    lambda: normalize(np.full((2, 2, 2), 300.0), "RGBTo01Normalization"),
    lambda: normalize(np.ones((2, 2, 2)), "CTNormalization", None, False, {"mean": 0.0}),
    lambda: normalize(np.ones((2, 2, 2)), "ZScoreNormalization", None, True, {}),
])
def test_errors(call) -> None:
    with pytest.raises(ValueError):
        call()
