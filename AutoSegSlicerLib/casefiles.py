"""Write a case's scene nodes to files for AutoSeg: one convention for the Planner and the Inference module.

A case is written in **channel 0's coordinate frame**: the channel-0 volume exactly as it is (its own
parent transform is not applied, so a result loaded back under that transform lands where the volume is
shown), every other node (channels > 0, the segmentation) carried through its own parent transform and
then the inverse of channel 0's. A T2 registered to a T1 by a transform therefore reaches AutoSeg
registered, for training and for inference alike. AutoSeg then puts channels > 0 and the labels on
channel 0's voxel grid (``autoseg.dataset.export.write``).

Segmentations are always written as binary labelmaps: one whose source representation is a closed surface
or planar contours (imported models, RTSTRUCT) is converted on channel 0's geometry first, because
Slicer's segmentation storage node writes only the source representation (a closed surface would be VTK
XML in a file named ``.seg.nrrd``).
"""

import slicer
import vtk


def _isIdentity(transform):
    linear = vtk.vtkTransform()
    if not slicer.vtkMRMLTransformNode.IsGeneralTransformLinear(transform, linear):
        return False
    matrix = linear.GetMatrix()
    return all(abs(matrix.GetElement(r, c) - (1.0 if r == c else 0.0)) < 1e-12 for r in range(4) for c in range(4))


def transformToFrameOf(node, referenceNode):
    """The transform from ``node``'s coordinates to ``referenceNode``'s, or None when they are the same frame."""
    transform = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(node.GetParentTransformNode(),
                                                         referenceNode.GetParentTransformNode(), transform)
    return None if _isIdentity(transform) else transform


def _exportOrRaise(node, path):
    if not slicer.util.exportNode(node, str(path), {}):
        raise RuntimeError(f"Could not write {node.GetName()} to {path}.")


class _TemporaryCopy:
    """A copy of ``node`` in the scene with ``transform`` hardened into it; removed on exit."""

    def __init__(self, node, transform):
        self.node, self.transform = node, transform
        self.copy = self.transformNode = None

    @staticmethod
    def _addHidden(scene, className, name):
        """A node no selector lists (so adding and removing it does not disturb the user's choices)."""
        node = scene.CreateNodeByClass(className)
        node.UnRegister(None)  # the scene holds the reference
        node.SetName(name)
        node.SetHideFromEditors(True)
        return scene.AddNode(node)

    def __enter__(self):
        scene = self.node.GetScene()
        self.copy = self._addHidden(scene, self.node.GetClassName(), f"{self.node.GetName()} (AutoSeg export)")
        self.copy.CopyContent(self.node, True)
        if self.transform is not None:
            self.transformNode = self._addHidden(scene, "vtkMRMLTransformNode", "AutoSeg export transform")
            linear = vtk.vtkTransform()
            if slicer.vtkMRMLTransformNode.IsGeneralTransformLinear(self.transform, linear):
                self.transformNode.SetMatrixTransformToParent(linear.GetMatrix())
            else:
                self.transformNode.SetAndObserveTransformToParent(self.transform)
            self.copy.SetAndObserveTransformNodeID(self.transformNode.GetID())
            self.copy.HardenTransform()
        return self.copy

    def __exit__(self, *exc):
        scene = self.node.GetScene()
        for node in (self.copy, self.transformNode):
            if node is not None:
                scene.RemoveNode(node)
        return False


def writeVolumeInFrameOf(volumeNode, referenceVolumeNode, path):
    """Write ``volumeNode`` to ``path`` in ``referenceVolumeNode``'s coordinate frame (see the module docstring)."""
    transform = transformToFrameOf(volumeNode, referenceVolumeNode)
    if transform is None:
        _exportOrRaise(volumeNode, path)
        return
    with _TemporaryCopy(volumeNode, transform) as copy:
        _exportOrRaise(copy, path)


def _referenceGeometry(referenceVolumeNode):
    matrix = vtk.vtkMatrix4x4()
    referenceVolumeNode.GetIJKToRASMatrix(matrix)
    return slicer.vtkSegmentationConverter.SerializeImageGeometry(matrix, referenceVolumeNode.GetImageData())


def writeSegmentationInFrameOf(segmentationNode, referenceVolumeNode, path):
    """Write ``segmentationNode`` as a binary-labelmap ``.seg.nrrd`` in ``referenceVolumeNode``'s frame."""
    labelmapName = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    transform = transformToFrameOf(segmentationNode, referenceVolumeNode)
    isLabelmap = segmentationNode.GetSegmentation().GetSourceRepresentationName() == labelmapName
    if transform is None and isLabelmap:
        _exportOrRaise(segmentationNode, path)
        return
    with _TemporaryCopy(segmentationNode, transform) as copy:
        segmentation = copy.GetSegmentation()
        if not isLabelmap:
            segmentation.SetConversionParameter(
                slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
                _referenceGeometry(referenceVolumeNode))
            if not segmentation.CreateRepresentation(labelmapName, True):
                raise RuntimeError(f"Could not convert {segmentationNode.GetName()} to a binary labelmap.")
            segmentation.SetSourceRepresentationName(labelmapName)
        _exportOrRaise(copy, path)


def writeCaseVolumes(volumeNodes, folder, stem, fileEnding):
    """Write the channel volumes as ``<stem>_<CCCC><fileEnding>`` in channel 0's frame; returns the paths."""
    paths = []
    for channel, volumeNode in enumerate(volumeNodes):
        if volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
            raise ValueError(f"{volumeNode.GetName()} is a labelmap volume, not an image: choose the image volume "
                             f"for channel {channel}.")
        path = folder / f"{stem}_{channel:04d}{fileEnding}"
        writeVolumeInFrameOf(volumeNode, volumeNodes[0], path)
        paths.append(path)
    return paths


def imageVolumeNodes():
    """The scene's image volumes (scalar volumes that are not labelmaps), in scene order."""
    return [node for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
            if not node.IsA("vtkMRMLLabelMapVolumeNode") and not node.GetHideFromEditors()]
