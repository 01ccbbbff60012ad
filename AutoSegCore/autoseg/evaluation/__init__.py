"""Segmentation metrics and ``summary.json`` in nnU-Net v2's format (``autoseg evaluate_folder``)."""

from autoseg.evaluation.folders import evaluate_with_dataset, evaluate_with_labels
from autoseg.evaluation.metrics import (
    ConfusionCounts,
    LabelOrRegion,
    confusion_counts,
    evaluated_labels_or_regions,
    label_or_region_key,
    parse_label_or_region_key,
    region_mask,
    segmentation_metrics,
)
from autoseg.evaluation.summary import (
    CaseMetrics,
    EvaluationSummary,
    evaluate_case,
    evaluate_folder,
    format_summary_table,
    load_summary,
    save_summary,
    summarize,
)

__all__ = [
    "CaseMetrics",
    "ConfusionCounts",
    "EvaluationSummary",
    "LabelOrRegion",
    "confusion_counts",
    "evaluate_case",
    "evaluate_folder",
    "evaluate_with_dataset",
    "evaluate_with_labels",
    "evaluated_labels_or_regions",
    "format_summary_table",
    "label_or_region_key",
    "load_summary",
    "parse_label_or_region_key",
    "region_mask",
    "save_summary",
    "segmentation_metrics",
    "summarize",
]
