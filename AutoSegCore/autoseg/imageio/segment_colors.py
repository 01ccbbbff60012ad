"""Segment colours and standard terminology for label names (no Slicer needed).

:func:`terminology_for_name` recognises the label names nnU-Net datasets commonly use ("liver",
"kidney_left", "Left Kidney", "urinary bladder", "edema", ...) and returns their SNOMED CT codes and the
colour 3D Slicer recommends for them. Each entry names the terminology list (context) it is taken from, and
its codes, meanings and (where the list recommends one) colour are exactly that list's: Slicer's own lists
(``SegmentationCategoryTypeModifier-SlicerGeneralAnatomy`` and the DICOM master list) and, for the few
structures Slicer's lists lack, the TotalSegmentator extension's list.
``Testing/slicer_modules/test_slicer_terminology.py`` checks every entry against those files. Structures not in
any of them are deliberately absent.

:func:`segment_colors` gives every foreground label of a ``dataset.json`` a colour: the terminology
colour where the name matches, otherwise a fixed palette colour, never the same colour twice.
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from autoseg.typing import Color

Code = tuple[str, str, str]

GENERAL_ANATOMY = "Segmentation category and type - 3D Slicer General Anatomy list"
DICOM_MASTER = "Segmentation category and type - DICOM master list"
#: The TotalSegmentator extension's list (the structures that Slicer's own lists lack).
TOTALSEGMENTATOR = "Segmentation category and type - Total Segmentator"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"

ANATOMICAL_STRUCTURE: Code = ("SCT", "123037004", "Anatomical Structure")
TISSUE: Code = ("SCT", "85756007", "Tissue")
ALTERED: Code = ("SCT", "49755003", "Morphologically Altered Structure")
LEFT: Code = ("SCT", "7771000", "Left")
RIGHT: Code = ("SCT", "24028007", "Right")


@dataclass(frozen=True)
class TerminologyEntry:
    """A segment's standard meaning: category, type, optional laterality modifier, recommended colour."""

    category: Code
    type: Code
    modifier: Code | None
    color: Color
    context: str = GENERAL_ANATOMY

    def to_slicer_string(self) -> str:
        """Slicer's ``TerminologyEntry`` tag value (``context~category~type~modifier~anatomy...``)."""
        modifier = "^".join(self.modifier) if self.modifier else "^^"
        return "~".join([self.context, "^".join(self.category), "^".join(self.type), modifier,
                         ANATOMIC_CONTEXT, "^^", "^^"])


@dataclass(frozen=True)
class _Structure:
    """One table row: aliases (normalised, without laterality), codes and colours (0-255)."""

    names: tuple[str, ...]
    category: Code
    type: Code
    color: tuple[int, int, int] | None = None  # without laterality (None: only sided forms exist)
    left: tuple[int, int, int] | None = None  # with the Left modifier (paired structures)
    right: tuple[int, int, int] | None = None
    context: str = GENERAL_ANATOMY


def _anatomy(names: str, code: str, meaning: str, color=None, left=None, right=None,
             context: str = GENERAL_ANATOMY) -> _Structure:
    return _Structure(tuple(names.split("|")), ANATOMICAL_STRUCTURE, ("SCT", code, meaning), color, left, right,
                      context)


def _paired(names: str, code: str, meaning: str, color: tuple[int, int, int], context: str = GENERAL_ANATOMY,
            right: tuple[int, int, int] | None = None) -> _Structure:
    return _anatomy(names, code, meaning, color, color, right or color, context)


_STRUCTURES: tuple[_Structure, ...] = (
    # Abdomen
    _anatomy("liver", "10200004", "Liver", (221, 130, 101)),
    _anatomy("spleen", "78961009", "Spleen", (157, 108, 162)),
    _anatomy("pancreas", "15776009", "Pancreas", (249, 180, 111)),
    _paired("kidney|kidneys", "64033007", "Kidney", (185, 102, 83)),
    _anatomy("stomach", "69695003", "Stomach", (216, 132, 105)),
    _anatomy("gallbladder|gall bladder", "28231008", "Gallbladder", (139, 150, 98)),
    _paired("adrenal gland|adrenal glands|adrenal", "23451007", "Adrenal gland", (249, 186, 150)),
    _anatomy("esophagus|oesophagus", "32849002", "Esophagus", (211, 171, 143)),
    _anatomy("duodenum", "38848004", "Duodenum", (255, 253, 229)),
    _anatomy("colon", "71854001", "Colon", (204, 168, 143)),
    _anatomy("small bowel|small intestine", "30315005", "Small Intestine", (205, 167, 142)),
    _anatomy("urinary bladder|bladder", "89837001", "Bladder", (222, 154, 132)),
    _anatomy("prostate", "41216001", "Prostate", (230, 158, 140)),
    _anatomy("uterus", "35039007", "Uterus", (255, 181, 158)),
    _paired("ovary|ovaries", "15497006", "Ovary", (213, 141, 113)),
    _anatomy("urethra", "13648007", "Urethra", (124, 186, 223)),
    # Vessels
    _anatomy("aorta", "15825003", "Aorta", (224, 97, 76)),
    _anatomy("inferior vena cava|ivc|vena cava inferior", "64131007", "Inferior vena cava", (0, 151, 206),
             context=DICOM_MASTER),
    _anatomy("superior vena cava|svc", "48345005", "Superior vena cava", (0, 141, 226), context=DICOM_MASTER),
    _anatomy("portal vein", "32764006", "Portal vein", (0, 151, 206), context=DICOM_MASTER),
    _anatomy("portal vein and splenic vein", "110765007", "Portal vein and splenic vein", (0, 90, 220),
             context=TOTALSEGMENTATOR),
    _anatomy("pulmonary artery", "81040000", "Pulmonary artery", (0, 122, 171), context=DICOM_MASTER),
    _paired("iliac artery|common iliac artery", "73634005", "Common iliac artery", (216, 101, 79),
            context=DICOM_MASTER),
    _paired("iliac vein|iliac vena|common iliac vein", "46027005", "Common iliac vein", (0, 151, 206),
            context=DICOM_MASTER),
    _anatomy("common carotid artery|carotid artery|carotid", "32062004", "Common carotid artery", None,
             (10, 105, 155), (0, 112, 165), context=DICOM_MASTER),
    _anatomy("brachiocephalic trunk|brachiocephalic artery|innominate artery", "12691009", "Innominate artery",
             (196, 121, 79), context=DICOM_MASTER),
    _anatomy("coronary artery|coronary arteries", "41801008", "Coronary artery", (220, 20, 22), context=DICOM_MASTER),
    # Thorax
    _paired("lung|lungs", "39607008", "Lung", (197, 165, 145)),
    _paired("lung upper lobe|upper lobe of lung|upper lobe", "45653009", "Upper lobe of lung", (172, 138, 115)),
    _paired("lung lower lobe|lower lobe of lung|lower lobe", "90572001", "Lower lobe of lung", (224, 186, 162)),
    _anatomy("lung middle lobe right|middle lobe of right lung|right lung middle lobe", "72481006",
             "Middle lobe of right lung", (202, 164, 140)),
    _anatomy("heart", "80891009", "Heart", (206, 110, 84)),
    _anatomy("myocardium|heart myocardium", "74281007", "Myocardium", (200, 0, 20), context=TOTALSEGMENTATOR),
    _anatomy("left ventricle|heart ventricle left|left ventricle of heart", "87878005", "Left Ventricle",
             (152, 55, 13)),
    _anatomy("right ventricle|heart ventricle right|right ventricle of heart", "53085002", "Right Ventricle",
             (181, 85, 57)),
    _anatomy("trachea", "44567001", "Trachea", (182, 228, 255)),
    _anatomy("thyroid|thyroid gland", "69748006", "Thyroid", (62, 162, 114)),
    _anatomy("thymus|thymus gland", "9875009", "Thymus Gland", (47, 150, 103)),
    _anatomy("larynx", "4596009", "Larynx", (150, 208, 243)),
    _anatomy("pharynx", "54066008", "Pharynx", (184, 105, 108)),
    # Skeleton
    _anatomy("rib|ribs", "113197003", "Rib", (253, 232, 158)),
    _anatomy("sternum", "56873002", "Sternum", (244, 217, 154)),
    _anatomy("skull", "89546000", "Skull", (241, 213, 144)),
    _anatomy("mandible", "91609006", "Mandible", (222, 198, 101)),
    _anatomy("sacrum", "54735007", "Sacrum", (212, 188, 102), context=DICOM_MASTER),
    _paired("femur|femurs", "71341001", "Femur", (255, 238, 170), context=DICOM_MASTER),
    _paired("humerus", "85050009", "Humerus", (205, 179, 108), context=DICOM_MASTER),
    _paired("scapula|scapulae", "79601000", "Scapula", (212, 188, 102), context=DICOM_MASTER),
    _paired("clavicle|clavicula|clavicles", "51299004", "Clavicle", (205, 179, 108)),
    _anatomy("hip|hips", "29836001", "Hip", (216, 184, 54), (230, 248, 62), (184, 46, 184), context=TOTALSEGMENTATOR),
    # Neuro
    _anatomy("brain", "12738006", "Brain", (250, 250, 225)),
    _anatomy("spinal cord", "2748008", "Spinal cord", (244, 214, 49)),
    _anatomy("white matter", "389080008", "White Matter", (250, 250, 210)),
    _anatomy("gray matter|grey matter", "389081007", "Gray Matter", (200, 200, 235)),
    _anatomy("corpus callosum", "88442005", "Corpus callosum", (97, 113, 158)),
    _paired("lateral ventricle|lateral ventricles", "66720007", "Lateral ventricle", (88, 106, 215)),
    _paired("thalamus", "119406000", "Thalamus", (122, 101, 38)),
    _paired("caudate|caudate nucleus", "11000004", "Caudate nucleus", (30, 111, 85)),
    _paired("putamen", "89278009", "Putamen", (210, 157, 166)),
    _paired("pallidum|globus pallidus", "14738005", "Globus pallidus", (48, 129, 126)),
    _paired("amygdala", "4958002", "Amygdala", (98, 153, 112)),
    _anatomy("pituitary|pituitary gland", "56329008", "Pituitary", (57, 157, 110)),
    _paired("eye|eyeball|eyes", "79652003", "Eyeball", (194, 142, 0)),
    # Muscles
    _anatomy("iliopsoas|iliopsoas muscle", "68455001", "Iliopsoas muscle", (200, 100, 40), (230, 115, 46),
             (170, 85, 34), context=TOTALSEGMENTATOR),
    _anatomy("gluteus maximus|gluteus maximus muscle", "181674001", "Gluteus maximus muscle", (220, 100, 30),
             (253, 115, 34), (187, 85, 26), context=TOTALSEGMENTATOR),
    # Tissues
    _Structure(("fat", "body fat", "adipose tissue"), TISSUE, ("SCT", "248300009", "Body fat"), (230, 220, 70)),
    _Structure(("muscle", "muscles", "skeletal muscle"), TISSUE, ("SCT", "71616004", "Muscle"), (192, 104, 88)),
    _Structure(("skin",), TISSUE, ("SCT", "39937001", "Skin"), (177, 122, 101)),
    _Structure(("bone", "bones"), TISSUE, ("SCT", "272673000", "Bone"), (241, 214, 145)),
    _Structure(("artery", "arteries"), TISSUE, ("SCT", "51114001", "Artery"), (216, 101, 79)),
    _Structure(("vein", "veins"), TISSUE, ("SCT", "29092000", "Vein"), (0, 151, 206)),
    _Structure(("cartilage",), TISSUE, ("SCT", "309312004", "Cartilage"), (111, 184, 210)),
    _Structure(("nerve", "nerves"), TISSUE, ("SCT", "119410002", "Nerve"), (244, 214, 49)),
    _Structure(("lymph node", "lymph nodes"), TISSUE, ("SCT", "59441001", "Lymph node"), (68, 172, 100)),
    # Findings
    _Structure(("mass",), ALTERED, ("SCT", "4147007", "Mass"), (144, 238, 144)),
    _Structure(("cyst", "cysts"), ALTERED, ("SCT", "367643001", "Cyst"), (205, 205, 100)),
    _Structure(("edema", "oedema"), ALTERED, ("SCT", "79654002", "Edema"), (140, 224, 228)),
    _Structure(("hemorrhage", "haemorrhage", "bleeding"), ALTERED, ("SCT", "50960005", "Hemorrhage"), (188, 65, 28)),
    _Structure(("necrosis",), ALTERED, ("SCT", "6574001", "Necrosis"), (216, 191, 216)),
    _Structure(("clot", "blood clot", "thrombus"), ALTERED, ("SCT", "75753009", "Blood clot"), (145, 60, 66)),
    _Structure(("embolus", "embolism"), ALTERED, ("SCT", "55584005", "Embolus"), (150, 98, 83)),
    # Slicer recommends no colour for Neoplasm: it gets the colour of Mass, its closest listed relative.
    _Structure(("tumor", "tumour", "tumors", "tumours", "neoplasm", "cancer"), ALTERED,
               ("SCT", "108369006", "Neoplasm"), (144, 238, 144), context=DICOM_MASTER),
)

_SIDE_WORDS = {"left": "left", "lt": "left", "right": "right", "rt": "right"}
_SIDE_LETTERS = {"l": "left", "r": "right"}  # only as the first or last word ("kidney_l", "R kidney")


def _build_index() -> dict[str, _Structure]:
    index: dict[str, _Structure] = {}
    for structure in _STRUCTURES:
        for name in structure.names:
            if name in index:
                raise ValueError(f"duplicate terminology alias {name!r}")  # table bug, caught by the tests
            index[name] = structure
    return index


_INDEX = _build_index()


def normalize_name(name: str) -> list[str]:
    """Lower-case words of ``name``: separators (space, ``_``, ``-``, ``.``, ...) and camelCase split."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return [w for w in re.split(r"[^0-9a-z]+", spaced.lower()) if w]


def _split_side(words: list[str]) -> tuple[list[str], str | None]:
    side: str | None = None
    rest: list[str] = []
    for position, word in enumerate(words):
        found = _SIDE_WORDS.get(word)
        if found is None and position in (0, len(words) - 1) and len(words) > 1:
            found = _SIDE_LETTERS.get(word)
        if found is None:
            rest.append(word)
        elif side is not None and side != found:
            return words, None  # "left right ...": not a laterality
        else:
            side = found
    return rest, side


def _rgb(values: tuple[int, int, int]) -> Color:
    return (values[0] / 255.0, values[1] / 255.0, values[2] / 255.0)


def terminology_for_name(name: str) -> TerminologyEntry | None:
    """The standard terminology of a label name, or None when it is not a structure we know."""
    words = normalize_name(name)
    if not words:
        return None
    whole = _INDEX.get(" ".join(words))
    if whole is not None and whole.color is not None:
        return TerminologyEntry(whole.category, whole.type, None, _rgb(whole.color), whole.context)
    rest, side = _split_side(words)
    structure = _INDEX.get(" ".join(rest))
    if structure is None:
        return None
    if side is None:
        if structure.color is None:
            return None
        return TerminologyEntry(structure.category, structure.type, None, _rgb(structure.color), structure.context)
    color = structure.left if side == "left" else structure.right
    if color is None:
        return None  # e.g. "left liver": the structure has no laterality
    return TerminologyEntry(structure.category, structure.type, LEFT if side == "left" else RIGHT, _rgb(color),
                            structure.context)


def known_terminology_entries() -> list[tuple[str, TerminologyEntry]]:
    """Every entry :func:`terminology_for_name` can give, each with a name that gives it (whole, left, right)."""
    entries = []
    for structure in _STRUCTURES:
        for name in (structure.names[0], f"left {structure.names[0]}", f"right {structure.names[0]}"):
            entry = terminology_for_name(name)
            if entry is not None:
                entries.append((name, entry))
    return entries


#: Hand-picked, well separated, saturated colours used first (then a golden-ratio hue walk).
_PALETTE: tuple[Color, ...] = (
    (0.90, 0.20, 0.20), (0.20, 0.55, 0.90), (0.25, 0.75, 0.30), (0.95, 0.75, 0.15),
    (0.65, 0.35, 0.85), (0.95, 0.50, 0.15), (0.15, 0.80, 0.80), (0.90, 0.40, 0.70),
    (0.55, 0.75, 0.15), (0.55, 0.30, 0.15), (0.30, 0.30, 0.75), (0.10, 0.55, 0.45),
    (0.80, 0.15, 0.45), (0.70, 0.60, 0.30), (0.45, 0.65, 0.95), (0.55, 0.85, 0.45),
)
_GOLDEN = 0.6180339887498949
_SATURATIONS = (0.80, 0.60, 0.90)
_VALUES = (0.92, 0.72, 0.82)


def _color_sequence() -> Iterator[Color]:
    yield from _PALETTE
    hue, step = 0.07, 0
    while True:
        hue = (hue + _GOLDEN) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, _SATURATIONS[step % 3], _VALUES[(step // 3) % 3])
        step += 1
        yield (round(r, 4), round(g, 4), round(b, 4))


def _distance(a: Color, b: Color) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5


def distinct_colors(count: int) -> list[tuple[float, float, float]]:
    """``count`` deterministic, visually distinct colours (none near black, white or grey)."""
    colors: list[Color] = []
    sequence = _color_sequence()
    while len(colors) < count:
        colors.append(next(sequence))
    return colors


#: Colours closer than this count as "the same" for segment_colors.
SAME_COLOR_DISTANCE = 0.02
#: Palette colours closer than this to a colour already used are skipped while others are available.
SIMILAR_COLOR_DISTANCE = 0.12


def _is_background(name: str, value: int | list[int] | tuple[int, ...]) -> bool:
    return name.strip().lower() in ("background", "ignore") or value == 0 or value in ([0], (0,))


def segment_colors(labels: Mapping[str, int | list[int] | tuple[int, ...]]) -> dict[str, tuple[float, float, float]]:
    """A colour per foreground label (``dataset.json`` ``labels``; background and ignore skipped).

    A label whose name has a standard terminology gets that colour unless an earlier label already has
    it; every other label gets the next palette colour that is not (nearly) used yet.
    """
    names = [name for name, value in labels.items() if not _is_background(name, value)]
    colors: dict[str, Color] = {}
    for name in names:
        entry = terminology_for_name(name)
        if entry is not None and all(_distance(entry.color, c) >= SAME_COLOR_DISTANCE for c in colors.values()):
            colors[name] = entry.color
    sequence = _color_sequence()
    for name in names:
        if name in colors:
            continue
        candidate = next(sequence)
        skipped = 0
        while skipped < 64 and any(_distance(candidate, c) < SIMILAR_COLOR_DISTANCE for c in colors.values()):
            candidate, skipped = next(sequence), skipped + 1
        while any(_distance(candidate, c) < SAME_COLOR_DISTANCE for c in colors.values()):
            candidate = next(sequence)
        colors[name] = candidate
    return {name: colors[name] for name in names}
