"""How many channels a configuration's network takes and produces (no torch needed)."""

from __future__ import annotations

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.plans.model import ConfigurationPlan


def input_channels(dataset_json: DatasetJson, configuration: ConfigurationPlan) -> int:
    """Image channels, plus one per foreground label for a cascade stage (the previous stage's one-hot)."""
    extra = len(dataset_json.foreground_labels) if configuration.previous_stage else 0
    return dataset_json.num_channels + extra


def output_channels(dataset_json: DatasetJson) -> int:
    """Segmentation heads: one per label (background included) or one per foreground region."""
    if dataset_json.has_regions:
        return len(dataset_json.foreground_regions)
    return len(dataset_json.all_labels)
