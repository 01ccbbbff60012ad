"""Overlay PNGs: slice choice, colours, normalisation, and ``autoseg plot_overlay_pngs`` on raw/preprocessed data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from autoseg.cli.main import main as autoseg_main
from autoseg.errors import VisualizationError
from autoseg.paths import Workspace
from autoseg.preprocessing.storage import save_case
from autoseg.visualization.overlay import (
    label_colour,
    normalise_image,
    overlay_rgb,
    save_overlay_png,
    select_slice,
)


def test_select_slice_weights_every_label_equally():
    seg = np.zeros((6, 10, 10), dtype=np.uint8)
    seg[1, :, :8] = 1  # 80 voxels of label 1 on slice 1 ...
    seg[2, :, :5] = 1  # ... 50 on slice 2
    seg[2, 0, 9] = 2  # label 2 only on slice 2 (1 voxel)
    assert select_slice(seg) == 2  # 50/130 + 1/1 beats 80/130
    seg[2, 0, 9] = 0
    assert select_slice(seg) == 1  # plain "most foreground" with a single label
    assert select_slice(np.zeros((5, 3, 3))) == 2  # no foreground: the middle slice
    with pytest.raises(VisualizationError, match="needs a \\(z, y, x\\)"):
        select_slice(np.zeros((3, 3)))


def test_normalise_image_windows_and_handles_degenerate_input():
    image = np.linspace(0, 1, 1000).reshape(10, 100)
    image[0, 0] = 1e6  # an outlier beyond the 99.5th percentile saturates instead of darkening everything
    grey = normalise_image(image)
    assert grey.dtype == np.uint8 and grey.max() == 255 and grey.min() == 0
    assert 100 < grey[5, 0] < 155  # the middle of the range stays mid-grey
    assert not normalise_image(np.full((4, 4), 7.0)).any()
    assert normalise_image(np.array([[np.nan, 0.0], [1.0, 2.0]])).dtype == np.uint8


def test_overlay_colours_are_fixed_per_label_and_blended():
    image = np.zeros((4, 4))
    image[:, 2:] = 1.0
    seg = np.zeros((4, 4), dtype=np.int16)
    seg[0, 0] = 1
    seg[1, 1] = 3
    seg[2, 2] = -1  # nnU-Net's "outside the crop" marker in preprocessed segmentations: not drawn
    rgb = overlay_rgb(image, seg, alpha=0.5)
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 0], np.round(0.5 * np.array(label_colour(1))))  # on black
    np.testing.assert_array_equal(rgb[1, 1], np.round(0.5 * np.array(label_colour(3))))
    np.testing.assert_array_equal(rgb[2, 2], [255, 255, 255])
    np.testing.assert_array_equal(rgb[3, 0], [0, 0, 0])
    assert label_colour(1) != label_colour(2) != label_colour(3)
    assert label_colour(15) == label_colour(1)


def test_save_overlay_png_volume_and_2d(tmp_path):
    image = np.random.default_rng(0).normal(size=(5, 12, 20)).astype(np.float32)
    seg = np.zeros((5, 12, 20), dtype=np.uint8)
    seg[3, 2:6, 4:9] = 2
    written = save_overlay_png(image, seg, tmp_path / "sub" / "case.png")
    assert written == tmp_path / "sub" / "case.png"
    picture = np.asarray(Image.open(written))
    assert picture.shape == (12, 20, 3)
    np.testing.assert_array_equal(picture, overlay_rgb(image[3], seg[3]))  # the labelled slice was chosen
    chosen = np.asarray(Image.open(save_overlay_png(image, seg, tmp_path / "s0.png", slice_index=0)))
    np.testing.assert_array_equal(chosen, overlay_rgb(image[0], seg[0]))
    flat = np.asarray(Image.open(save_overlay_png(image[3], seg[3], tmp_path / "2d.png")))
    np.testing.assert_array_equal(flat, picture)
    with pytest.raises(VisualizationError, match="same shape"):
        save_overlay_png(image, seg[:4], tmp_path / "x.png")
    with pytest.raises(VisualizationError, match="Slice 9 does not exist"):
        save_overlay_png(image, seg, tmp_path / "x.png", slice_index=9)
    assert not (tmp_path / "x.png").exists()


def _raw_dataset(workspace: Workspace) -> None:
    raw = workspace.raw / "Dataset061_Overlay"
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    rng = np.random.default_rng(1)
    for case in ("a", "b"):
        seg = np.zeros((6, 16, 16), dtype=np.uint8)
        seg[2, 4:10, 4:10] = 1
        for channel in (0, 1):
            sitk.WriteImage(sitk.GetImageFromArray(rng.normal(size=seg.shape).astype(np.float32)),
                            str(raw / "imagesTr" / f"{case}_{channel:04d}.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(seg), str(raw / "labelsTr" / f"{case}.nii.gz"))
    (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T1", "1": "T2"}, "labels": {
        "background": 0, "x": 1}, "numTraining": 2, "file_ending": ".nii.gz"}))


@pytest.fixture()
def workspace(tmp_path, monkeypatch) -> Workspace:
    ws = Workspace.from_root(tmp_path / "ws")
    for name, folder in (("nnUNet_raw", ws.raw), ("nnUNet_preprocessed", ws.preprocessed),
                         ("nnUNet_results", ws.results)):
        monkeypatch.setenv(name, str(folder))
    _raw_dataset(ws)
    return ws


def test_cli_raw(workspace, tmp_path):
    out = tmp_path / "pngs"
    assert autoseg_main(["plot_overlay_pngs", "-d", "61", "-o", str(out), "--use_raw", "-np", "1",
                         "-channel_idx", "1", "-overlay_intensity", "0.4"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(workspace.raw / "Dataset061_Overlay/imagesTr/a_0001.nii.gz")))
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(workspace.raw / "Dataset061_Overlay/labelsTr/a.nii.gz")))
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a.png")), overlay_rgb(image[2], seg[2], alpha=0.4))


def test_cli_errors(workspace, tmp_path, capsys):
    assert autoseg_main(["plot_overlay_pngs", "-d", "61", "-o", str(tmp_path / "o"), "--use_raw",
                         "-channel_idx", "2"]) == 1
    assert "Channel index 2 does not exist" in capsys.readouterr().err
    assert autoseg_main(["plot_overlay_pngs", "-d", "61", "-o", str(tmp_path / "o")]) == 1
    assert "nnUNetPlans.json does not exist" in capsys.readouterr().err


def test_cli_preprocessed(workspace, tmp_path):
    preprocessed = workspace.preprocessed / "Dataset061_Overlay"
    configuration = {"data_identifier": "nnUNetPlans_2d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
                     "patch_size": [16, 16], "median_image_size_in_voxels": [16, 16], "spacing": [1.0, 1.0],
                     "normalization_schemes": ["ZScoreNormalization"] * 2, "use_mask_for_norm": [False, False],
                     "resampling_fn_data": "r", "resampling_fn_seg": "r", "resampling_fn_data_kwargs": {},
                     "resampling_fn_seg_kwargs": {}, "resampling_fn_probabilities": "r",
                     "resampling_fn_probabilities_kwargs": {},
                     "architecture": {"network_class_name": "x", "arch_kwargs": {}, "_kw_requires_import": []}}
    preprocessed.mkdir(parents=True)
    (preprocessed / "nnUNetPlans.json").write_text(
        json.dumps(
            {
                "dataset_name": "Dataset061_Overlay",
                "plans_name": "nnUNetPlans",
                "original_median_spacing_after_transp": [1, 1, 1],
                "original_median_shape_after_transp": [6, 16, 16],
                "image_reader_writer": "SimpleITKIO",
                "transpose_forward": [0, 1, 2],
                "transpose_backward": [0, 1, 2],
                "configurations": {"2d": configuration},
                "experiment_planner_used": "E",
                "label_manager": "LabelManager",
                "foreground_intensity_properties_per_channel": {},
            }
        )
    )
    data = np.random.default_rng(2).normal(size=(2, 6, 16, 16)).astype(np.float32)
    seg = np.full((1, 6, 16, 16), -1, dtype=np.int8)
    seg[0, :, 2:14, 2:14] = 0
    seg[0, 4, 5:9, 5:9] = 1
    save_case(preprocessed / "nnUNetPlans_2d", "a", data, seg, {})
    out = tmp_path / "pngs"
    assert autoseg_main(["plot_overlay_pngs", "-d", "Dataset061_Overlay", "-o", str(out), "-np", "1"]) == 0
    assert [p.name for p in out.iterdir()] == ["a.png"]  # 2d: no 3d_fullres in these plans
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a.png")), overlay_rgb(data[0, 4], seg[0, 4]))
