"""apply_postprocessing_to_folder: geometry kept, inputs untouched, settings found, 2D images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from pp_cases import DIRECTION, ORIGIN, SPACING, folder_bytes, make_folders, read_seg, spurious_blobs_case

from autoseg.errors import PostprocessingError
from autoseg.postprocessing import PostprocessingStep, apply_postprocessing_to_folder, save_postprocessing


def test_applies_steps_and_keeps_geometry(tmp_path: Path) -> None:
    pred, gt = make_folders(tmp_path, spurious_blobs_case)
    before = folder_bytes(pred)
    out = tmp_path / "out"
    names = apply_postprocessing_to_folder(pred, out, [PostprocessingStep([1, 2])], num_processes=2)
    assert names == ["case_000.nii.gz", "case_001.nii.gz", "case_002.nii.gz"]
    for name in names:
        image = sitk.ReadImage(str(out / name))
        assert np.array_equal(sitk.GetArrayFromImage(image), read_seg(gt / name))
        assert image.GetSpacing() == pytest.approx(SPACING) and image.GetOrigin() == pytest.approx(ORIGIN)
        assert image.GetDirection() == pytest.approx(DIRECTION)
    assert folder_bytes(pred) == before
    assert json.loads((out / "dataset.json").read_text())["labels"]["posterior"] == 2
    assert json.loads((out / "plans.json").read_text())["image_reader_writer"] == "SimpleITKIO"
    assert not list(out.glob(".*"))  # no temporary files left


def test_one_label_step_leaves_other_labels(tmp_path: Path) -> None:
    pred, _ = make_folders(tmp_path, spurious_blobs_case)
    out = tmp_path / "out"
    apply_postprocessing_to_folder(pred, out, [PostprocessingStep(2)], num_processes=1)
    original, result = read_seg(pred / "case_000.nii.gz"), read_seg(out / "case_000.nii.gz")
    assert result[10, 2, 16] == 0 and (result[9:11, 15:17, 15:17] == 1).all()
    assert np.count_nonzero(original != result) == 1


def test_settings_next_to_the_postprocessing_file_and_errors(tmp_path: Path) -> None:
    pred, _ = make_folders(tmp_path, spurious_blobs_case, plans=False)
    model = tmp_path / "model"
    save_postprocessing([PostprocessingStep(1)], model)
    (pred / "dataset.json").rename(model / "dataset.json")
    with pytest.raises(PostprocessingError, match="No dataset.json"):
        apply_postprocessing_to_folder(pred, tmp_path / "out", [PostprocessingStep(1)], num_processes=1)
    apply_postprocessing_to_folder(pred, tmp_path / "out", [PostprocessingStep(1)], num_processes=1, search=[model])
    assert read_seg(tmp_path / "out" / "case_000.nii.gz")[9:11, 15:17, 15:17].sum() == 0
    with pytest.raises(PostprocessingError, match="is the input folder"):
        apply_postprocessing_to_folder(pred, pred, [], dataset_json=model / "dataset.json", num_processes=1)
    with pytest.raises(PostprocessingError, match="does not exist"):
        apply_postprocessing_to_folder(tmp_path / "nothing", tmp_path / "o2", [],
                                       dataset_json=model / "dataset.json", num_processes=1)


def test_2d_png_images_with_diagonal_connectivity(tmp_path: Path) -> None:
    folder = tmp_path / "pred"
    folder.mkdir()
    seg = np.zeros((30, 40), np.uint8)
    seg[5:15, 5:15] = 1
    seg[15, 15] = 1  # touches the square diagonally: kept
    seg[25:27, 30:33] = 1  # separate: removed
    Image.fromarray(seg).save(folder / "cell.png")
    dataset = {"channel_names": {"0": "microscopy"}, "labels": {"background": 0, "cell": 1}, "numTraining": 1,
               "file_ending": ".png"}
    out = tmp_path / "out"
    apply_postprocessing_to_folder(folder, out, [PostprocessingStep([1])], dataset_json=dataset, num_processes=1)
    result = np.asarray(Image.open(out / "cell.png"))
    expected = seg.copy()
    expected[25:27, 30:33] = 0
    assert result.shape == seg.shape and np.array_equal(result, expected)
