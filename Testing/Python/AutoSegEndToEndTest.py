"""Slicer self-test of the whole extension on CPU (registered with ctest by Testing/Python/CMakeLists.txt).

Two annotated oblique cases made in the scene are exported with the Planner's Logic, planned and
preprocessed, trained for one tiny epoch with the Trainer's Logic (fold "all"), and segmented with
the Inference Logic; the segmentation node must have the dataset's segments on the input's geometry.
Every step runs the real ``autoseg`` commands in ``PythonSlicer`` processes. Set AUTOSEG_TEST_PYTHON
to run the commands with another Python (the process factory is injectable).
"""

import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np
import slicer


class AutoSegEndToEndTest(unittest.TestCase):
    def setUp(self):
        slicer.mrmlScene.Clear()
        self.workspace = Path(tempfile.mkdtemp(prefix="AutoSegEndToEnd-"))

    def tearDown(self):
        shutil.rmtree(self.workspace, ignore_errors=True)

    def test_export_plan_train_infer(self):
        from AutoSegInference import AutoSegInferenceLogic
        from AutoSegPlanner import AutoSegPlannerLogic
        from AutoSegSlicerLib.testing import makeAnnotatedCase, testProcessFactory
        from AutoSegTrainer import AutoSegTrainerLogic

        processFactory = testProcessFactory()
        planner = AutoSegPlannerLogic(processFactory=processFactory)
        volumes = []
        for index in range(2):
            volume, segmentation, _labels = makeAnnotatedCase(f"case{index}", ["Liver", "Left Kidney"], seed=index)
            planner.addSceneCase(f"case{index}", [volume], segmentation)
            volumes.append(volume)
        plan = planner.planExport(self.workspace, "991", "EndToEnd", {"0": "MR"}, ".nii.gz")
        self.assertEqual(plan.problems, [])
        export = planner.startExport(plan, overwrite=False)
        planner.runner.waitForCompletion(timeoutSeconds=300)
        self.assertEqual((export.returncode, export.error), (0, ""))

        planner.startPlanning(self.workspace, "991", verify=True, gpuMemoryTargetGb=2.0)
        planner.runner.waitForCompletion(timeoutSeconds=900)
        columns, rows = planner.plansSummary(self.workspace, "991")
        self.assertIn("3d_fullres", [row[0] for row in rows])

        trainer = AutoSegTrainerLogic(processFactory=processFactory)
        self.assertEqual(trainer.plannedDatasets(self.workspace), ["Dataset991_EndToEnd"])
        trainer.setDataset(self.workspace, "Dataset991_EndToEnd")
        trainer.addRuns(["3d_fullres"], ["all"])
        trainer.startQueue(device="cpu", epochs=1, iterationsPerEpoch=2, findBestWhenDone=False)
        trainer.runner.waitForCompletion(timeoutSeconds=1800)
        self.assertEqual([run.state for run in trainer.queue.runs], ["done"])
        self.assertEqual(list(slicer.util.arrayFromTableColumn(trainer.tableNode, "epoch")), [0])

        inference = AutoSegInferenceLogic(processFactory=processFactory)
        models = inference.findModels(self.workspace)
        self.assertEqual([m.configuration for m in models], ["3d_fullres"])
        results = []
        inference.onDone = lambda node, error: results.append((node, error))
        output = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
        inference.startSegmentation(models[0], [volumes[1]], output, device="cpu", folds=["all"], postprocessing=False)
        inference.runner.waitForCompletion(timeoutSeconds=900)
        self.assertEqual(len(results), 1)
        node, error = results[0]
        self.assertIsNone(error)
        segmentation = node.GetSegmentation()
        names = sorted(segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments()))
        self.assertEqual(names, ["Left Kidney", "Liver"])
        # geometry: each segment's labelmap, exported on the input volume, has the volume's shape and the
        # segmentation's reference geometry is the volume's
        for i in range(segmentation.GetNumberOfSegments()):
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(node, segmentation.GetNthSegmentID(i), volumes[1])
            self.assertEqual(mask.shape, slicer.util.arrayFromVolume(volumes[1]).shape)
        volumeMatrix = np.array(slicer.util.arrayFromVTKMatrix(_ijkToRas(volumes[1])))
        labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        slicer.modules.segmentations.logic().ExportAllSegmentsToLabelmapNode(
            node, labelmap, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
        )
        np.testing.assert_allclose(
            np.array(slicer.util.arrayFromVTKMatrix(_ijkToRas(labelmap))), volumeMatrix, atol=1e-6
        )


def _ijkToRas(volumeNode):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return matrix
