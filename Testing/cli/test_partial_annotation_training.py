"""Partially annotated cases, end to end: export with the ignore label, verify, plan, train a tiny run, evaluate.

Five generated cases (volume ``.nrrd`` + ``.seg.nrrd`` written like Slicer's): three annotated only on some
K slices (``CASE.annotated_slices.json`` sidecars), two fully. ``autoseg export_segmentations`` adds
``"ignore": 3``, ``verify_dataset`` accepts the dataset, ``plan_and_preprocess`` and a 1-epoch CPU training run
on it, and ``evaluate_folder`` leaves the ignore voxels out of the metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autoseg.cli.main import main
from autoseg.dataset.export.annotated_slices import write_sidecar
from autoseg.demo.synthetic import synthetic_case
from autoseg.imageio.ras_geometry import Geometry, apply_geometry
from autoseg.imageio.segmentation_file import write_segmentation_file
from autoseg.paths import Workspace

SHAPE = (12, 40, 40)  # (k, j, i)
SPACING = (3.0, 1.0, 1.0)  # (k, j, i) in mm
GEOMETRY = Geometry(spacing=SPACING[::-1], origin=(-20.0, 15.0, 4.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
ANNOTATED = {"case_0": [2, 5, 8], "case_1": [3, 4, 5, 6], "case_2": [1, 6, 10]}  # K slices; case_3/4 full
TINY = ["--epochs", "1", "--iterations_per_epoch", "2", "--val_iterations", "1", "--seed", "0", "--no_pbar",
        "-device", "cpu", "-num_workers", "0", "-tr", "nnUNetTrainerNoMirroring"]


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    ws = Workspace.from_root(tmp_path / "ws")
    for name, folder in (("nnUNet_raw", ws.raw), ("nnUNet_preprocessed", ws.preprocessed),
                         ("nnUNet_results", ws.results)):
        monkeypatch.setenv(name, str(folder))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    return ws


def write_annotations(folder: Path) -> dict[str, np.ndarray]:
    """The five cases as the Slicer modules save them; returns each case's complete labels."""
    folder.mkdir(parents=True)
    complete = {}
    for index in range(5):
        case = f"case_{index}"
        image, labels = synthetic_case(300 + index, shape=SHAPE, spacing=SPACING)
        volume = sitk.GetImageFromArray(image)
        apply_geometry(volume, GEOMETRY)
        sitk.WriteImage(volume, str(folder / f"{case}.nrrd"), True)
        painted = labels.copy()
        if case in ANNOTATED:  # the annotator painted only these slices
            painted[np.setdiff1d(np.arange(SHAPE[0]), ANNOTATED[case])] = 0
            write_sidecar(folder / f"{case}.seg.nrrd", "K", ANNOTATED[case])
        write_segmentation_file(folder / f"{case}.seg.nrrd", painted, GEOMETRY, {1: "organ", 2: "lesion"})
        complete[case] = labels
    return complete


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_partial_cases_export_verify_train_and_evaluate(workspace: Workspace, tmp_path: Path, capsys) -> None:
    complete = write_annotations(tmp_path / "annotated")
    assert main(["export_segmentations", "-i", str(tmp_path / "annotated"), "-d", "61", "-n", "Sparse",
                 "-channel_names", "CT"]) == 0
    assert "case_1: 1 channel(s), case_1.seg.nrrd [new], partial: 4/12 slices along K" in capsys.readouterr().out
    raw = workspace.raw / "Dataset061_Sparse"
    dataset_json = json.loads((raw / "dataset.json").read_text())
    assert dataset_json["labels"] == {"background": 0, "organ": 1, "lesion": 2, "ignore": 3}
    for case, slices in ANNOTATED.items():
        label = read(raw / "labelsTr" / f"{case}.nii.gz")
        np.testing.assert_array_equal(label[slices], complete[case][slices])
        assert (np.delete(label, slices, axis=0) == 3).all()
    assert 3 not in read(raw / "labelsTr" / "case_3.nii.gz")

    assert main(["verify_dataset", "-d", "61"]) == 0
    assert main(["plan_and_preprocess", "-d", "61", "-c", "3d_fullres", "-np", "1", "-npfp", "1", "--no_pbar"]) == 0
    assert main(["train", "61", "3d_fullres", "0", *TINY]) == 0
    fold = workspace.results / "Dataset061_Sparse" / "nnUNetTrainerNoMirroring__nnUNetPlans__3d_fullres" / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file()
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2"}

    # a prediction right on the annotated slices and wrong everywhere else: perfect where it is judged
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    for case in ANNOTATED:
        reference = sitk.ReadImage(str(raw / "labelsTr" / f"{case}.nii.gz"))
        wrong = np.where(sitk.GetArrayFromImage(reference) == 3, 1, complete[case]).astype(np.uint8)
        prediction = sitk.GetImageFromArray(wrong)
        prediction.CopyInformation(reference)
        sitk.WriteImage(prediction, str(predictions / f"{case}.nii.gz"))
    gt = tmp_path / "references"  # the partial cases' references, as plan_and_preprocess stored them
    gt.mkdir()
    for case in ANNOTATED:
        name = f"{case}.nii.gz"
        (gt / name).write_bytes((workspace.preprocessed / "Dataset061_Sparse" / "gt_segmentations" / name).read_bytes())
    plans = workspace.preprocessed / "Dataset061_Sparse" / "nnUNetPlans.json"
    output = tmp_path / "summary.json"
    assert main(["evaluate_folder", str(gt), str(predictions), "-djfile", str(raw / "dataset.json"), "-pfile",
                 str(plans), "-o", str(output), "-np", "1"]) == 0
    result = json.loads(output.read_text())
    assert result["foreground_mean"]["Dice"] == pytest.approx(1.0)
    for entry in result["metric_per_case"]:
        counts = entry["metrics"]["1"]
        judged = len(ANNOTATED[Path(entry["reference_file"]).name[: -len(".nii.gz")]]) * SHAPE[1] * SHAPE[2]
        assert counts["FP"] == 0 and counts["TP"] + counts["FP"] + counts["FN"] + counts["TN"] == judged
