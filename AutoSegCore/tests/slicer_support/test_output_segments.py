"""Output segments of plain and region-based models: values, names, distinct colours, terminology."""

from __future__ import annotations

import pytest
import slicerio.segmentation as slicerio_segmentation

from autoseg.slicer_support.output_segments import output_segments, probability_channel_names


def test_plain_labels_sorted_by_value_with_distinct_colours():
    segments = output_segments({"background": 0, "tumour": 2, "liver": 1, "Left Kidney": 3})
    assert [(s.value, s.name) for s in segments] == [(1, "liver"), (2, "tumour"), (3, "Left Kidney")]
    colours = [s.color for s in segments]
    assert len(set(colours)) == 3 and all(0 <= c <= 1 for colour in colours for c in colour)
    liver = segments[0]
    assert liver.terminology and "Liver" in liver.terminology
    parsed = slicerio_segmentation.terminology_entry_from_string(liver.terminology)
    assert parsed["type"] == ["SCT", "10200004", "Liver"]
    assert "Left" in segments[2].terminology  # the side is a modifier


def test_unknown_names_get_palette_colours_and_no_terminology():
    segments = output_segments({"background": 0, "structure A": 1, "structure B": 2})
    assert all(s.terminology is None for s in segments)
    assert segments[0].color != segments[1].color


def test_region_model_names_values_from_regions_class_order():
    labels = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
    segments = output_segments(labels, regions_class_order=[1, 2, 3])
    assert [(s.value, s.name) for s in segments] == [(1, "whole tumor"), (2, "tumor core"), (3, "enhancing tumor")]
    with pytest.raises(ValueError, match="regions_class_order"):
        output_segments(labels, regions_class_order=None)


def test_probability_channel_names():
    assert probability_channel_names({"background": 0, "a": 1, "b": 2}, 3) == ["background", "a", "b"]
    regions = {"background": 0, "whole": [1, 2], "core": [2]}
    assert probability_channel_names(regions, 2) == ["whole", "core"]
    assert probability_channel_names({"background": 0, "a": 1}, 3) == ["background", "a", "label 2"]
    assert probability_channel_names(regions, 3) == ["channel 0", "channel 1", "channel 2"]


def test_the_ignore_label_is_never_a_segment_or_a_probability_channel():
    labels = {"background": 0, "liver": 1, "tumour": 2, "ignore": 3}
    assert [(s.value, s.name) for s in output_segments(labels)] == [(1, "liver"), (2, "tumour")]
    assert probability_channel_names(labels, 3) == ["background", "liver", "tumour"]
    regions = {"background": 0, "whole": [1, 2], "core": 2, "ignore": 3}
    assert [s.name for s in output_segments(regions, [1, 2])] == ["whole", "core"]
