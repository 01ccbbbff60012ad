"""Segment colours and terminology: name matching, Slicer terminology strings, distinct colours."""

from __future__ import annotations

import colorsys
import itertools

import pytest
from slicerio.segmentation import terminology_entry_from_string, terminology_entry_to_string

from autoseg.imageio.segment_colors import (
    GENERAL_ANATOMY,
    LEFT,
    RIGHT,
    distinct_colors,
    segment_colors,
    terminology_for_name,
)


@pytest.mark.parametrize("name", ["kidney_left", "Left Kidney", "left kidney", "kidney left", "KidneyLeft",
                                  "L_kidney", "kidney-L", "left_kidney"])
def test_left_kidney_spellings(name):
    entry = terminology_for_name(name)
    assert entry is not None
    assert entry.type == ("SCT", "64033007", "Kidney")
    assert entry.modifier == LEFT
    assert entry.category == ("SCT", "123037004", "Anatomical Structure")
    assert entry.color == pytest.approx((185 / 255, 102 / 255, 83 / 255))


@pytest.mark.parametrize(
    ("name", "code", "modifier"),
    [
        ("liver", "10200004", None),
        ("Spleen", "78961009", None),
        ("PANCREAS", "15776009", None),
        ("urinary_bladder", "89837001", None),
        ("bladder", "89837001", None),
        ("small bowel", "30315005", None),
        ("inferior_vena_cava", "64131007", None),
        ("IVC", "64131007", None),
        ("portal vein", "32764006", None),
        ("lung_right", "39607008", RIGHT),
        ("adrenal_gland_right", "23451007", RIGHT),
        ("R adrenal gland", "23451007", RIGHT),
        ("lung_upper_lobe_left", "45653009", LEFT),
        ("heart_ventricle_left", "87878005", None),
        ("femur_left", "71341001", LEFT),
        ("gall bladder", "28231008", None),
        ("oesophagus", "32849002", None),
        ("edema", "79654002", None),
        ("Necrosis", "6574001", None),
        ("tumor", "108369006", None),
        ("Tumour", "108369006", None),
        ("brain", "12738006", None),
        ("trachea", "44567001", None),
    ],
)
def test_known_structures(name, code, modifier):
    entry = terminology_for_name(name)
    assert entry is not None and entry.type[1] == code and entry.modifier == modifier


@pytest.mark.parametrize("name", ["Anterior", "Posterior", "label_1", "background", "", "left right kidney",
                                  "left liver", "L1", "whole tumor region", "carotid"])
def test_unknown_or_ambiguous_names(name):
    assert terminology_for_name(name) is None


def test_left_and_right_can_have_their_own_colour():
    left, right = terminology_for_name("common_carotid_artery_left"), terminology_for_name("right carotid artery")
    assert left.modifier == LEFT and right.modifier == RIGHT and left.color != right.color


@pytest.mark.parametrize("name", ["liver", "kidney_right", "edema", "tumor", "inferior vena cava", "fat"])
def test_slicer_string_parses_back_with_slicerio(name):
    entry = terminology_for_name(name)
    text = entry.to_slicer_string()
    parsed = terminology_entry_from_string(text)
    assert parsed["contextName"] == entry.context
    assert tuple(parsed["category"]) == entry.category and tuple(parsed["type"]) == entry.type
    assert tuple(parsed.get("typeModifier", ())) == (entry.modifier or ())
    assert parsed["anatomicContextName"] == "Anatomic codes - DICOM master list"
    assert "anatomicRegion" not in parsed
    assert terminology_entry_to_string(parsed) == text  # and the exact same string comes back


def test_liver_string_is_slicers_format():
    assert terminology_for_name("liver").to_slicer_string() == (
        f"{GENERAL_ANATOMY}~SCT^123037004^Anatomical Structure~SCT^10200004^Liver~^^~"
        "Anatomic codes - DICOM master list~^^~^^")


def test_distinct_colors_are_deterministic_distinct_and_colourful():
    colors = distinct_colors(120)
    assert colors == distinct_colors(120) and distinct_colors(5) == colors[:5]
    for red, green, blue in colors:
        hue, saturation, value = colorsys.rgb_to_hsv(red, green, blue)
        assert saturation >= 0.35, (red, green, blue)  # not grey, not near white
        assert 0.5 <= value <= 1.0, (red, green, blue)  # not near black
    closest = min(sum((a - b) ** 2 for a, b in zip(x, y)) ** 0.5 for x, y in itertools.combinations(colors, 2))
    assert closest > 0.02
    first = colors[:16]
    assert min(sum((a - b) ** 2 for a, b in zip(x, y)) ** 0.5 for x, y in itertools.combinations(first, 2)) > 0.15
    assert distinct_colors(0) == []


def test_segment_colors_uses_terminology_and_palette_without_repeats():
    labels = {"background": 0, "liver": 1, "Anterior": 2, "Posterior": 3, "kidney_left": 4, "kidney_right": 5,
              "portal_vein": 6, "inferior vena cava": 7, "ignore": 8}
    colors = segment_colors(labels)
    assert list(colors) == ["liver", "Anterior", "Posterior", "kidney_left", "kidney_right", "portal_vein",
                            "inferior vena cava"]
    assert colors["liver"] == terminology_for_name("liver").color
    assert colors["kidney_left"] == terminology_for_name("kidney_left").color
    # Slicer gives both kidneys (and the portal vein and the IVC) the same colour: the later label gets another
    assert colors["kidney_right"] != colors["kidney_left"]
    assert colors["inferior vena cava"] != colors["portal_vein"]
    values = list(colors.values())
    assert min(sum((a - b) ** 2 for a, b in zip(x, y)) ** 0.5 for x, y in itertools.combinations(values, 2)) > 0.02
    assert colors["Anterior"] == distinct_colors(1)[0]  # the first palette colour not close to liver's
    assert segment_colors(labels) == colors


def test_segment_colors_with_regions_and_many_labels():
    regions = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
    colors = segment_colors(regions)
    assert list(colors) == ["whole tumor", "tumor core", "enhancing tumor"] and len(set(colors.values())) == 3
    many = segment_colors({"background": 0, **{f"label_{i}": i for i in range(1, 60)}})
    assert len(many) == 59 and len(set(many.values())) == 59
