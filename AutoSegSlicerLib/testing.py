"""Tiny annotated scenes for the AutoSeg self-tests (run inside Slicer)."""

import numpy as np
import slicer
import vtk


def obliqueIjkToRas(spacing=(0.9, 1.1, 1.6), origin=(-12.5, 30.25, 7.0), degrees=17.0):
    """An IJK-to-RAS matrix rotated about an oblique axis, with anisotropic spacing and a non-zero origin."""
    axis = np.array([1.0, 2.0, 0.5]) / np.linalg.norm([1.0, 2.0, 0.5])
    angle = np.radians(degrees)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix


def _setIjkToRas(node, matrix):
    vtkMatrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            vtkMatrix.SetElement(row, column, matrix[row, column])
    node.SetIJKToRASMatrix(vtkMatrix)


def makeAnnotatedCase(name, segmentNames, seed=0, shape=(24, 40, 40)):
    """A volume with a bright sphere and a darker box, and a segmentation of both.

    Returns (volume node, segmentation node, labels as a (k, j, i) array: 1 = sphere = segmentNames[0],
    2 = box = segmentNames[1]). The volume is oblique; the segmentation is imported from a labelmap
    on the volume's grid.
    """
    rng = np.random.default_rng(seed)
    k, j, i = np.indices(shape)
    centre = np.array(shape) / 2 + rng.uniform(-2, 2, 3)
    sphere = ((k - centre[0]) / 6) ** 2 + ((j - centre[1]) / 9) ** 2 + ((i - centre[2]) / 9) ** 2 <= 1
    box = (k > 3) & (k < 9) & (j > 4) & (j < 14) & (i > 26) & (i < 36)
    labels = np.zeros(shape, np.uint8)
    labels[sphere] = 1
    labels[box & ~sphere] = 2
    intensities = rng.normal(100, 10, shape) + 200 * (labels == 1) + 90 * (labels == 2)

    matrix = obliqueIjkToRas()
    volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(volume, intensities.astype(np.float32))
    _setIjkToRas(volume, matrix)
    labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{name}-labels")
    slicer.util.updateVolumeFromArray(labelmap, labels)
    _setIjkToRas(labelmap, matrix)
    segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{name}-segmentation")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmap, segmentation)
    slicer.mrmlScene.RemoveNode(labelmap)
    segments = segmentation.GetSegmentation()
    for index, segmentName in enumerate(segmentNames):
        segments.GetNthSegment(index).SetName(segmentName)
    return volume, segmentation, labels


def testProcessFactory():
    """The ``processFactory`` for self-tests: commands run by ``$AUTOSEG_TEST_PYTHON`` when it is set (a Python
    with AutoSegCore, as in CI), else None: the modules' default, ``PythonSlicer``."""
    import os

    python = os.environ.get("AUTOSEG_TEST_PYTHON")
    if not python:
        return None

    from autoseg.slicer_support.background_process import BackgroundProcess

    return lambda command: BackgroundProcess(command.command_line(python), environment=command.environment)
