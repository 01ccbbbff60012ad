import pytest

from autoseg.dataset.export.label_mapping import LabelMappingError, build_label_table, name_key


def test_case_insensitive_matching_and_consecutive_values():
    table = build_label_table({
        "case_a": ["Liver", "Left Kidney"],
        "case_b": ["left  kidney", "LIVER", "Spleen"],
    })
    assert table.labels == {"background": 0, "Liver": 1, "Left Kidney": 2, "Spleen": 3}
    assert table.case_segments["case_b"] == {"left  kidney": 2, "LIVER": 1, "Spleen": 3}
    assert table.missing == {"case_a": ["Spleen"]}
    assert table.new_labels == ["Liver", "Left Kidney", "Spleen"]
    assert table.value_of(" spleen ") == 3 and table.value_of("aorta") is None


def test_extending_an_existing_dataset_keeps_its_names_and_values():
    table = build_label_table({"new_case": ["kidney", "Tumour"]}, {"background": 0, "Kidney": 1, "Cyst": 2})
    assert table.labels == {"background": 0, "Kidney": 1, "Cyst": 2, "Tumour": 3}
    assert table.case_segments["new_case"] == {"kidney": 1, "Tumour": 3}
    assert table.new_labels == ["Tumour"]
    assert table.missing == {"new_case": ["Cyst"]}


@pytest.mark.parametrize("cases, existing, message", [
    ({"c": ["Background"]}, None, "'background' is label 0"),
    ({"c": ["Liver", " liver"]}, None, "two segments that match the same label"),
    ({"c": ["  "]}, None, "without a name"),
    ({"c": ["a"]}, {"background": 0, "x": 2}, "not consecutive"),
    ({"c": ["a"]}, {"background": 0, "tumor": [1, 2]}, "region-based"),
    ({"c": ["a"]}, {"organ": 0, "x": 1}, "must be 'background'"),
])
def test_unmappable_names_are_refused_with_the_reason(cases, existing, message):
    with pytest.raises(LabelMappingError, match=message):
        build_label_table(cases, existing)


def test_name_key():
    assert name_key("  Left\tKidney ") == name_key("left kidney") == "left kidney"
