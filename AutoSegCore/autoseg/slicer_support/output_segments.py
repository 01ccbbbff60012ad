"""The segments a model's output becomes in Slicer: value, name, colour and terminology per label.

Plain label models: one segment per label other than background and ``ignore``, with the label's value.
Region-based models (nnU-Net's ``labels`` with lists, e.g. BraTS ``"whole tumor": [1, 2, 3]``): the exported
label map holds ``regions_class_order[i]`` where region ``i`` is the innermost one predicted, so that value
is named after region ``i``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from autoseg.imageio.segment_colors import segment_colors, terminology_for_name

BACKGROUND = "background"
#: nnU-Net's label for unannotated voxels: a model never predicts it, so it is never a segment or a channel
IGNORE = "ignore"


@dataclass(frozen=True)
class OutputSegment:
    value: int  # voxel value in the predicted label map
    name: str
    color: tuple[float, float, float]
    terminology: str | None  # Slicer terminology string when the name is a known structure


def _foreground(labels: Mapping[str, int | Sequence[int]]) -> list[tuple[str, int | Sequence[int]]]:
    return [(name, value) for name, value in labels.items() if name not in (BACKGROUND, IGNORE)]


def _is_region_model(labels: Mapping[str, int | Sequence[int]]) -> bool:
    return any(isinstance(value, (list, tuple)) for value in labels.values())


def output_segments(
    labels: Mapping[str, int | Sequence[int]],
    regions_class_order: Sequence[int] | None = None,
) -> list[OutputSegment]:
    """The segments of a model's label map, sorted by value, with distinct colours."""
    foreground = _foreground(labels)
    if _is_region_model(labels):
        if not regions_class_order or len(regions_class_order) != len(foreground):
            raise ValueError(
                f"A region-based model needs 'regions_class_order' with one value per region "
                f"({len(foreground)}), got {regions_class_order!r}; check the model's dataset.json."
            )
        values = {name: int(v) for (name, _), v in zip(foreground, regions_class_order)}
    else:  # no list or tuple among the values: they are ints
        values = {name: int(cast(int, value)) for name, value in foreground}
    colors = segment_colors({name: values[name] for name in values})
    segments = []
    for name, value in values.items():
        entry = terminology_for_name(name)
        segments.append(OutputSegment(value, name, colors[name], entry.to_slicer_string() if entry else None))
    return sorted(segments, key=lambda s: s.value)


def probability_channel_names(labels: Mapping[str, int | Sequence[int]], num_channels: int) -> list[str]:
    """Names of the channels of a model's probability output (``--save_probabilities``).

    Plain models have one channel per label value (background included); region models one per region.
    """
    if _is_region_model(labels):
        names = [name for name, _ in _foreground(labels)]
    else:
        by_value = {int(cast(int, value)): name for name, value in labels.items() if name != IGNORE}  # ints
        names = [by_value.get(channel, f"label {channel}") for channel in range(num_channels)]
    if len(names) != num_channels:
        return [f"channel {channel}" for channel in range(num_channels)]
    return names
