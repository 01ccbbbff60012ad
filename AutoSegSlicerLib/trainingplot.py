"""The AutoSeg Trainer's live curves: a table node with one row per epoch and a plot chart over it.

``TrainingPlotLogicMixin`` gives the Trainer's Logic ``_ensurePlot()`` (creates the nodes once, titles the chart
after the run) and ``_updateCurves()`` (refills the table from ``self.monitor.curves``, a
``autoseg.slicer_support.training_monitor.TrainingCurves``); the Logic holds ``tableNode``, ``chartNode`` and
``monitor``.
"""

import numpy as np
import slicer

CURVE_COLUMNS = ("epoch", "train loss", "validation loss", "pseudo Dice", "EMA pseudo Dice")


class TrainingPlotLogicMixin:
    """The curves of the run followed by ``self.monitor``, in ``self.tableNode`` / ``self.chartNode``."""

    tableNode = None
    chartNode = None

    def _ensurePlot(self):
        if self.tableNode is None or slicer.mrmlScene.GetNodeByID(self.tableNode.GetID()) is None:
            self.tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", "AutoSeg training curves")
            self.chartNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotChartNode", "AutoSeg training")
            self.chartNode.SetXAxisTitle("epoch")
            self.chartNode.SetYAxisTitle("loss / Dice")
            self._updateCurves(force=True)
            for column in CURVE_COLUMNS[1:]:
                series = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", column)
                series.SetAndObserveTableNodeID(self.tableNode.GetID())
                series.SetXColumnName(CURVE_COLUMNS[0])
                series.SetYColumnName(column)
                series.SetPlotType(series.PlotTypeScatter)
                series.SetMarkerStyle(series.MarkerStyleNone)
                self.chartNode.AddAndObservePlotSeriesNodeID(series.GetID())
        if self.monitor:
            self.chartNode.SetTitle(self.monitor.status.message.split(",")[0] if self.monitor.status.message else "")

    def _updateCurves(self, force=False):
        curves = self.monitor.curves if self.monitor else None
        if self.tableNode is None or (curves is None and not force):
            return
        columns = (
            [curves.epochs, curves.train_loss, curves.val_loss, curves.pseudo_dice, curves.ema_dice]
            if curves
            else [[]] * 5
        )
        array = np.array([[np.nan if v is None else float(v) for v in column] for column in columns], dtype=float).T
        slicer.util.updateTableFromArray(self.tableNode, array.reshape(-1, len(CURVE_COLUMNS)), list(CURVE_COLUMNS))
