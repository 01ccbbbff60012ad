"""Images between the Slicer scene and AutoSeg, on real MRML and Slicer's own storage nodes (``slicer_env``).

- the case-file convention shared by the Planner and the Inference module (channel 0's frame): a second
  channel registered by a parent transform reaches AutoSeg registered; channel 0's own transform is kept
  out of the files, and results come back under it, also on a second run into the same segmentation;
- segmentations whose source representation is a closed surface are exported as labelmaps;
- real files both ways: ``.seg.nrrd`` written by Slicer's storage node read by AutoSeg, and the ``.seg.nrrd``
  and label files AutoSeg writes read by Slicer with names, values, colours, terminology and voxels intact.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import SimpleITK as sitk


def _vtk_matrix(array: np.ndarray):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(array[row, column]))
    return matrix


def _ijk_to_ras(node) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _rigid(degrees: float, axis: tuple[float, float, float], translation: tuple[float, float, float]) -> np.ndarray:
    axis_array = np.asarray(axis, float) / np.linalg.norm(axis)
    cross = np.array([[0, -axis_array[2], axis_array[1]], [axis_array[2], 0, -axis_array[0]],
                      [-axis_array[1], axis_array[0], 0]])
    angle = np.radians(degrees)
    matrix = np.eye(4)
    matrix[:3, :3] = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
    matrix[:3, 3] = translation
    return matrix


def _transform_node(scene, matrix: np.ndarray):
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    node.SetMatrixTransformToParent(_vtk_matrix(matrix))
    return node


def _planner(real_slicer):
    """The Planner's Logic; its commands (the export) run by this Python instead of PythonSlicer."""
    from autoseg.slicer_support.background_process import BackgroundProcess

    def process(command):
        return BackgroundProcess(command.command_line(sys.executable), environment=command.environment)

    return real_slicer.load_module("AutoSegPlanner").AutoSegPlannerLogic(processFactory=process)


def _export(planner, plan) -> None:
    """Export as the module does (``autoseg export_segmentations`` in a background process) and wait."""
    export = planner.startExport(plan, overwrite=False)
    planner.runner.waitForCompletion(timeoutSeconds=300)
    assert (export.returncode, export.error) == (0, "")


def _annotated_case(name: str, seed: int = 0):
    from AutoSegSlicerLib.testing import makeAnnotatedCase

    return makeAnnotatedCase(name, ["liver", "kidney"], seed=seed)


def _unregistered_copy(scene, volume, name: str, registration: np.ndarray, scale: float = 0.5, offset: float = 3.0):
    """A second channel stored on a grid moved by ``registration``'s inverse, put back by a parent transform:
    in world coordinates it lies exactly on ``volume`` (its voxels = volume's * scale + offset)."""
    import slicer

    array = slicer.util.arrayFromVolume(volume).astype(np.float32) * scale + offset
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, array)
    node.SetIJKToRASMatrix(_vtk_matrix(np.linalg.inv(registration) @ _ijk_to_ras(volume)))
    node.SetAndObserveTransformNodeID(_transform_node(scene, registration).GetID())
    return node, array


def test_inference_inputs_carry_a_transformed_second_channel_onto_channel_0(real_slicer, tmp_path):
    inference = real_slicer.load_module("AutoSegInference")
    t1, _segmentation, _labels = _annotated_case("case T1")
    t2, t2_voxels = _unregistered_copy(real_slicer.scene, t1, "case T2", _rigid(15, (0.2, 0.4, 1), (12, -7, 5)))
    files = inference.AutoSegInferenceLogic.writeInputs([t1, t2], tmp_path / "job", ".nii.gz")
    first, second = (sitk.ReadImage(str(path)) for path in files)
    for getter in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(second, getter)() == getattr(first, getter)()
    # registered: on channel 0's grid the second channel has its own voxels (voxel centres map onto voxel centres)
    np.testing.assert_allclose(sitk.GetArrayFromImage(second), t2_voxels, atol=1e-3)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(first), real_slicer.slicer.util.arrayFromVolume(t1))


def test_planner_exports_a_transformed_second_channel_registered(real_slicer, tmp_path):
    planner = _planner(real_slicer)
    t1, segmentation, labels = _annotated_case("case T1")
    _t2, t2_voxels = _unregistered_copy(real_slicer.scene, t1, "case T2", _rigid(-20, (1, 0.3, 0.1), (-4, 9, 2)))
    planner.addSceneCase("case0", [t1, _t2], segmentation)
    plan = planner.planExport(tmp_path / "ws", "17", "TwoChannels", {"0": "T1", "1": "T2"}, ".nii.gz")
    assert plan.problems == []
    _export(planner, plan)
    folder = tmp_path / "ws" / "nnUNet_raw" / "Dataset017_TwoChannels"
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "imagesTr" / "case0_0001.nii.gz"))),
                               t2_voxels, atol=1e-3)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "case0.nii.gz"))),
                                  labels)


def _result_file(volume, labels: np.ndarray, folder) -> object:
    """What ``autoseg predict`` writes for this volume: the labels on the volume's own grid (its input file's)."""
    from autoseg.imageio.ras_geometry import apply_geometry, geometry_from_ijk_to_ras

    result = sitk.GetImageFromArray(labels.astype(np.uint8))
    apply_geometry(result, geometry_from_ijk_to_ras(_ijk_to_ras(volume)))
    path = folder / "case.nii.gz"
    sitk.WriteImage(result, str(path))
    return path


def _model(folder, labels):
    from autoseg.slicer_support.models import ModelInfo

    return ModelInfo(folder=folder, dataset_name="Dataset001_Test", trainer="nnUNetTrainer", plans="nnUNetPlans",
                     configuration="3d_fullres", folds=["0"], channel_names={"0": "MR"}, labels=labels,
                     file_ending=".nii.gz", needs_previous_stage=False, postprocessing_file=None)


def test_second_inference_run_into_the_same_segmentation_lands_on_a_transformed_volume(real_slicer, tmp_path):
    slicer = real_slicer.slicer
    inference = real_slicer.load_module("AutoSegInference")
    volume, segmentation, labels = _annotated_case("case")
    real_slicer.scene.RemoveNode(segmentation)
    transform = _transform_node(real_slicer.scene, _rigid(15, (0, 0, 1), (14, -9, 11)))
    volume.SetAndObserveTransformNodeID(transform.GetID())
    path = _result_file(volume, labels, tmp_path)
    model = _model(tmp_path, {"background": 0, "liver": 1, "kidney": 2})
    output = real_slicer.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
    for _run in range(2):
        inference.AutoSegInferenceLogic.loadResult(path, volume, model, output)
        assert output.GetTransformNodeID() == transform.GetID()
        segments = output.GetSegmentation()
        assert segments.GetNumberOfSegments() == 2
        for value, name in ((1, "liver"), (2, "kidney")):
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(output, segments.GetSegmentIdBySegmentName(name), volume)
            np.testing.assert_array_equal(mask > 0, labels == value, err_msg=f"run {_run + 1}, {name}")


def test_probability_volumes_follow_the_input_volume(real_slicer, tmp_path):
    inference = real_slicer.load_module("AutoSegInference")
    volume, _segmentation, labels = _annotated_case("case")
    transform = _transform_node(real_slicer.scene, _rigid(10, (1, 0, 0), (3, 4, 5)))
    volume.SetAndObserveTransformNodeID(transform.GetID())
    probabilities = np.stack([labels == value for value in (0, 1, 2)]).astype(np.float16)
    np.savez_compressed(tmp_path / "case.npz", probabilities=probabilities)
    nodes = inference.AutoSegInferenceLogic.loadProbabilities(
        tmp_path / "case.npz", volume, _model(tmp_path, {"background": 0, "liver": 1, "kidney": 2}))
    assert len(nodes) == 3
    for channel, node in enumerate(nodes):
        assert node.GetTransformNodeID() == transform.GetID()
        np.testing.assert_allclose(_ijk_to_ras(node), _ijk_to_ras(volume))
        np.testing.assert_array_equal(real_slicer.slicer.util.arrayFromVolume(node), probabilities[channel])


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_planner_exports_a_closed_surface_segmentation_as_a_labelmap(real_slicer, tmp_path):
    from autoseg.imageio.segmentation_file import read_segmentation_file

    planner = _planner(real_slicer)
    volume, segmentation, labels = _annotated_case("case0")
    # what an imported model or RTSTRUCT gives: a closed surface as the only (source) representation
    segmentation.CreateClosedSurfaceRepresentation()
    segmentation.SetSourceRepresentationToClosedSurface()
    segmentation.GetSegmentation().RemoveRepresentation(
        real_slicer.slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName())
    case = planner.addSceneCase("case0", [volume], segmentation)
    staged = read_segmentation_file(case.segmentation)  # a real NRRD, not VTK XML under a .seg.nrrd name
    assert sorted(s.name for s in staged.segments) == ["kidney", "liver"]
    # the user's segmentation is untouched
    assert segmentation.GetSegmentation().GetSourceRepresentationName() == "Closed surface"
    plan = planner.planExport(tmp_path / "ws", "18", "Surfaces", {"0": "MR"}, ".nii.gz")
    _export(planner, plan)
    label = sitk.ReadImage(str(tmp_path / "ws" / "nnUNet_raw" / "Dataset018_Surfaces" / "labelsTr" / "case0.nii.gz"))
    exported = sitk.GetArrayFromImage(label)
    values = plan.label_table.labels
    assert _dice(exported == values["liver"], labels == 1) > 0.9  # surface -> voxels is not exact at the border
    assert _dice(exported == values["kidney"], labels == 2) > 0.85


def test_planner_writes_the_segmentation_in_channel_0_frame(real_slicer, tmp_path):
    """Volume and segmentation under one transform, or only the volume: the labels land on the painted voxels."""
    planner = _planner(real_slicer)
    scene = real_slicer.scene
    together, segmentation, labels = _annotated_case("together", seed=1)
    shared = _transform_node(scene, _rigid(25, (0.3, 1, 0.2), (5, 5, -5)))
    together.SetAndObserveTransformNodeID(shared.GetID())
    segmentation.SetAndObserveTransformNodeID(shared.GetID())
    planner.addSceneCase("together", [together], segmentation)
    plan = planner.planExport(tmp_path / "ws", "19", "Frames", {"0": "MR"}, ".nii.gz")
    _export(planner, plan)
    written = tmp_path / "ws" / "nnUNet_raw" / "Dataset019_Frames"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(written / "labelsTr" / "together.nii.gz"))),
                                  labels)
    image = sitk.ReadImage(str(written / "imagesTr" / "together_0000.nii.gz"))
    from autoseg.imageio.ras_geometry import geometry_of_image, ijk_to_ras_matrix

    np.testing.assert_allclose(ijk_to_ras_matrix(geometry_of_image(image)), _ijk_to_ras(together), atol=1e-4)


def test_planner_carries_an_untransformed_segmentation_into_a_transformed_volume_frame(real_slicer, tmp_path):
    """Segment Editor on a transformed volume: the segmentation (not transformed) is painted in world space."""
    slicer = real_slicer.slicer
    planner = _planner(real_slicer)
    volume, old, labels = _annotated_case("moved", seed=2)
    real_slicer.scene.RemoveNode(old)
    registration = _rigid(-18, (0.1, 0.2, 1), (7, -3, 9))
    volume.SetAndObserveTransformNodeID(_transform_node(real_slicer.scene, registration).GetID())
    painted_on = real_slicer.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "world grid")
    slicer.util.updateVolumeFromArray(painted_on, labels)
    painted_on.SetIJKToRASMatrix(_vtk_matrix(registration @ _ijk_to_ras(volume)))  # where the volume is shown
    segmentation = real_slicer.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "painted")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(painted_on)
    slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(painted_on, segmentation)
    planner.addSceneCase("moved", [volume], segmentation)
    plan = planner.planExport(tmp_path / "ws", "20", "Moved", {"0": "MR"}, ".nii.gz")
    _export(planner, plan)
    exported = sitk.GetArrayFromImage(sitk.ReadImage(
        str(tmp_path / "ws" / "nnUNet_raw" / "Dataset020_Moved" / "labelsTr" / "moved.nii.gz")))
    np.testing.assert_array_equal(exported, labels)


# Real files both ways -------------------------------------------------------------------------------------------


def _overlapping_segmentation(real_slicer, volume):
    """Two overlapping segments (Slicer stores them in two layers) painted on ``volume``'s grid."""
    slicer = real_slicer.slicer
    shape = slicer.util.arrayFromVolume(volume).shape
    k, j, i = np.indices(shape)
    ball = (k - 12) ** 2 / 36 + (j - 20) ** 2 / 81 + (i - 18) ** 2 / 64 <= 1
    slab = (k > 10) & (k < 15) & (j > 5) & (j < 30) & (i > 12) & (i < 30)
    segmentation = real_slicer.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "overlapping")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    for name, mask, color in (("Tumor", ball, (0.9, 0.1, 0.1)), ("Edema", slab, (0.1, 0.8, 0.2))):
        segment_id = segmentation.GetSegmentation().AddEmptySegment(name, name, color)
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype(np.uint8), segmentation, segment_id, volume)
    return segmentation, {"Tumor": ball, "Edema": slab}


def test_a_seg_nrrd_written_by_slicer_is_read_exactly_by_autoseg(real_slicer, tmp_path):
    from autoseg.dataset.export.grid_alignment import labelmap_on_reference
    from autoseg.imageio.segmentation_file import read_segmentation_file

    volume, old, _labels = _annotated_case("case")
    real_slicer.scene.RemoveNode(old)
    transform = _transform_node(real_slicer.scene, _rigid(30, (1, 1, 0), (1, 2, 3)))
    segmentation, masks = _overlapping_segmentation(real_slicer, volume)
    for node in (volume, segmentation):
        node.SetAndObserveTransformNodeID(transform.GetID())
    storage = real_slicer.scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(tmp_path / "case.seg.nrrd"))
    storage.SetCropToMinimumExtent(True)
    assert storage.WriteData(segmentation)
    assert real_slicer.slicer.util.exportNode(volume, str(tmp_path / "case.nrrd"), {})

    read = read_segmentation_file(tmp_path / "case.seg.nrrd")
    assert read.layers.shape[0] == 2  # overlapping segments in separate layers
    assert read.layers.shape[1:] != real_slicer.slicer.util.arrayFromVolume(volume).shape  # cropped
    by_name = {s.name: s for s in read.segments}
    assert sorted(by_name) == ["Edema", "Tumor"]
    np.testing.assert_allclose(by_name["Tumor"].color, (0.9, 0.1, 0.1), atol=1e-3)
    reference = sitk.ReadImage(str(tmp_path / "case.nrrd"))
    for name, mask in masks.items():
        label = labelmap_on_reference(read, {name: 1}, reference)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(label) == 1, mask, err_msg=name)


def test_files_autoseg_writes_are_read_by_slicer_intact(real_slicer, tmp_path):
    from autoseg.imageio.ras_geometry import Geometry, ijk_to_ras_matrix
    from autoseg.imageio.segment_colors import terminology_for_name
    from autoseg.imageio.segmentation_file import SegmentInfo, write_segmentation_file

    slicer = real_slicer.slicer
    geometry = Geometry(spacing=(0.8, 1.1, 2.5), origin=(-30.0, 12.5, 40.0),
                        direction=tuple(_rigid(35, (0.5, 1, 2), (0, 0, 0))[:3, :3].ravel()))
    rng = np.random.default_rng(7)
    labels = np.zeros((12, 20, 18), np.uint8)
    labels[2:8, 3:12, 4:10] = 1
    labels[6:11, 10:18, 9:16] = 2
    labels[rng.random(labels.shape) < 0.02] = 3
    liver = terminology_for_name("liver").to_slicer_string()
    segments = [SegmentInfo("liver", 1, 0, (0.8, 0.5, 0.4), liver), SegmentInfo("left kidney", 2, 0, (0.2, 0.3, 0.9)),
                SegmentInfo("specks", 3, 0, (0.5, 0.5, 0.1))]
    write_segmentation_file(tmp_path / "out.seg.nrrd", labels, geometry, segments)
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    sitk.WriteImage(image, str(tmp_path / "labels.nii.gz"))

    reference = slicer.util.loadVolume(str(tmp_path / "labels.nii.gz"), {"show": False})
    np.testing.assert_allclose(_ijk_to_ras(reference), ijk_to_ras_matrix(geometry), atol=1e-5)
    labelmap = slicer.util.loadLabelVolume(str(tmp_path / "labels.nii.gz"), {"show": False})
    assert labelmap.IsA("vtkMRMLLabelMapVolumeNode")
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(labelmap), labels)

    node = slicer.util.loadSegmentation(str(tmp_path / "out.seg.nrrd"))
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == [
        "liver", "left kidney", "specks"]
    for info in segments:
        segment_id = segmentation.GetSegmentIdBySegmentName(info.name)
        segment = segmentation.GetSegment(segment_id)
        np.testing.assert_allclose(segment.GetColor(), info.color, atol=1e-3)
        assert segment.GetLabelValue() == info.label_value
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, reference)
        np.testing.assert_array_equal(mask > 0, labels == info.label_value, err_msg=info.name)
    import vtk

    tag = vtk.reference("")
    assert segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("liver")).GetTag("TerminologyEntry", tag)
    assert str(tag) == liver


@pytest.mark.parametrize("ending", [".nii.gz", ".nrrd"])
def test_case_volumes_keep_their_geometry_exactly(real_slicer, tmp_path, ending):
    """Channel 0 is written as it is: voxels and IJK-to-RAS (oblique, anisotropic) survive the round trip."""
    from AutoSegSlicerLib import writeCaseVolumes

    volume, _segmentation, _labels = _annotated_case("case")
    path = writeCaseVolumes([volume], tmp_path, "case", ending)[0]
    loaded = real_slicer.slicer.util.loadVolume(str(path), {"show": False})
    np.testing.assert_allclose(_ijk_to_ras(loaded), _ijk_to_ras(volume), atol=1e-5)
    np.testing.assert_array_equal(real_slicer.slicer.util.arrayFromVolume(loaded),
                                  real_slicer.slicer.util.arrayFromVolume(volume))
