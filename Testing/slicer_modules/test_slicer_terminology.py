"""Every terminology entry AutoSeg puts on a segment exists, exactly, in the list it names.

The lists are the files Slicer reads: its default terminologies (General Anatomy, DICOM master list; the
copies shipped in the ``trame-slicer`` wheel, loaded here with the real ``vtkSlicerTerminologiesModuleLogic``
too) and the TotalSegmentator extension's list, which that extension builds from the
``totalsegmentator_snomed_mapping.csv`` of the ``totalsegmentator`` package.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from autoseg.imageio.segment_colors import (
    DICOM_MASTER,
    GENERAL_ANATOMY,
    TOTALSEGMENTATOR,
    known_terminology_entries,
    terminology_for_name,
)


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)  # located, not imported: only its data files are read
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed (test requirements)"
    return Path(spec.submodule_search_locations[0]) / relative


SLICER_LISTS = {
    GENERAL_ANATOMY: "SegmentationCategoryTypeModifier-SlicerGeneralAnatomy.term.json",
    DICOM_MASTER: "SegmentationCategoryTypeModifier-DICOM-Master.term.json",
}
Code = tuple[str, str]  # (value, meaning)


def _slicer_list(context: str) -> dict[tuple[str, str, str], tuple[Code, Code, Code | None, list | None]]:
    """(category, type, modifier code values) -> (category, type, modifier (value, meaning), recommended RGB)."""
    data = json.loads(_package_file("trame_slicer", f"resources/terminologies/{SLICER_LISTS[context]}").read_text())
    assert data["SegmentationCategoryTypeContextName"] == context
    entries = {}
    for category in data["SegmentationCodes"]["Category"]:
        cat = (category["CodeValue"], category["CodeMeaning"])
        for type_ in category.get("Type", []):
            typ = (type_["CodeValue"], type_["CodeMeaning"])
            entries[(cat[0], typ[0], "")] = (cat, typ, None, type_.get("recommendedDisplayRGBValue"))
            for modifier in type_.get("Modifier", []):
                mod = (modifier["CodeValue"], modifier["CodeMeaning"])
                entries[(cat[0], typ[0], mod[0])] = (cat, typ, mod, modifier.get("recommendedDisplayRGBValue"))
    return entries


def _totalsegmentator_list() -> dict[tuple[str, str, str], tuple[Code, Code, Code | None, list | None]]:
    path = _package_file("totalsegmentator", "resources/totalsegmentator_snomed_mapping.csv")
    entries = {}
    with path.open(newline="") as stream:
        for row in csv.DictReader(stream):
            def code(sequence: str, row: dict[str, str] = row) -> Code:
                return (row[f"{sequence}.CodeValue"], row[f"{sequence}.CodeMeaning"])

            cat, typ = code("SegmentedPropertyCategoryCodeSequence"), code("SegmentedPropertyTypeCodeSequence")
            mod = code("SegmentedPropertyTypeModifierCodeSequence")
            color = [int(v) for v in row["DicomRGBColor"].split(",")]
            entries[(cat[0], typ[0], mod[0])] = (cat, typ, mod if mod[0] else None, color)
    return entries


LISTS = {GENERAL_ANATOMY: _slicer_list(GENERAL_ANATOMY), DICOM_MASTER: _slicer_list(DICOM_MASTER),
         TOTALSEGMENTATOR: _totalsegmentator_list()}
ENTRIES = known_terminology_entries()


def test_every_structure_has_entries():
    assert len(ENTRIES) >= 100
    assert {entry.context for _name, entry in ENTRIES} == set(LISTS)


@pytest.mark.parametrize(("name", "entry"), ENTRIES, ids=[name for name, _entry in ENTRIES])
def test_entry_is_in_the_list_it_names(name, entry):
    listed = LISTS[entry.context].get((entry.category[1], entry.type[1], entry.modifier[1] if entry.modifier else ""))
    assert listed is not None, f"{name}: {entry.type} {entry.modifier} is not in {entry.context!r}"
    category, type_, modifier, color = listed
    assert (entry.category[1], entry.category[2]) == category, name
    assert (entry.type[1], entry.type[2]) == type_, name  # the meaning that list gives the code
    if entry.modifier:
        assert (entry.modifier[1], entry.modifier[2]) == modifier, name
    if color is not None:  # the list recommends a colour: it is the one used
        assert [round(c * 255) for c in entry.color] == list(color), name
    assert all(scheme == "SCT" for scheme in (entry.category[0], entry.type[0], (entry.modifier or ("SCT",))[0]))


def test_the_codes_slicer_lists_lack_come_from_totalsegmentator():
    for name in ("portal vein and splenic vein", "myocardium", "hip", "left iliopsoas", "gluteus maximus"):
        assert terminology_for_name(name).context == TOTALSEGMENTATOR, name
    assert terminology_for_name("brachiocephalic trunk").type == ("SCT", "12691009", "Innominate artery")


def test_slicer_s_terminology_logic_finds_every_entry_in_its_list(real_slicer):
    """Slicer's own terminology logic parses each tag AutoSeg writes and finds it in the list it names."""
    import slicer

    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    for file_name in SLICER_LISTS.values():
        assert logic.LoadTerminologyFromFile(str(_package_file("trame_slicer", f"resources/terminologies/{file_name}")))
    checked = 0
    for name, entry in ENTRIES:
        if entry.context not in SLICER_LISTS:
            continue
        parsed = slicer.vtkSlicerTerminologyEntry()
        assert logic.DeserializeTerminologyEntry(entry.to_slicer_string(), parsed), name
        assert parsed.GetTerminologyContextName() == entry.context
        assert parsed.GetTypeObject().GetCodeValue() == entry.type[1], name
        modifier = entry.modifier or ("", "", "")
        found = logic.FindTerminologyNames(entry.category[0], entry.category[1], entry.type[0], entry.type[1],
                                           modifier[0], modifier[1], [entry.context])
        assert entry.context in found, f"{name}: Slicer does not find {entry.type} {entry.modifier} in {entry.context}"
        checked += 1
    assert checked >= 80
