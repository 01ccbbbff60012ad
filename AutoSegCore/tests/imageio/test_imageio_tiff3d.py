"""Tiff3DIO: 3D TIFF stacks with the ``{case}.json`` spacing sidecar."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
from imageio_helpers import intensities, labels

from autoseg.errors import ImageIOError
from autoseg.imageio.tiff3d_io import Tiff3DIO, image_sidecar_path, seg_sidecar_path

SPACING = [3.1, 0.7, 1.3]


def write_stack(
    path: Path, array: np.ndarray, spacing: list | None = None, sidecar: Path | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array, photometric="minisblack")
    if spacing is not None:
        (sidecar or path).with_suffix(".json").write_text(json.dumps({"spacing": spacing}))
    return path


def test_sidecar_locations() -> None:
    assert image_sidecar_path("/d/imagesTr/liver_001_0000.tif") == Path("/d/imagesTr/liver_001.json")
    assert image_sidecar_path("/d/imagesTr/liver_001_0003.tiff") == Path("/d/imagesTr/liver_001.json")
    assert seg_sidecar_path("/d/labelsTr/liver_001.tif") == Path("/d/labelsTr/liver_001.json")
    assert seg_sidecar_path("/d/labelsTr/liver_001.TIFF") == Path("/d/labelsTr/liver_001.json")


@pytest.mark.parametrize("ending", [".tif", ".tiff"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float32])
def test_images_read_with_sidecar_spacing(tmp_path: Path, ending: str, dtype: type) -> None:
    image = intensities((5, 6, 7), dtype)
    source = write_stack(tmp_path / "imagesTr" / f"case_0000{ending}", image)
    (tmp_path / "imagesTr" / "case.json").write_text(json.dumps({"spacing": SPACING}))
    data, props = Tiff3DIO().read_images([source])
    assert data.shape == (1, 5, 6, 7) and data.dtype == np.float32
    assert np.array_equal(data[0], image.astype(np.float32))
    assert props == {"spacing": SPACING}


@pytest.mark.parametrize("ending", [".tif", ".tiff"])
def test_seg_round_trip_writes_sidecar(tmp_path: Path, ending: str) -> None:
    seg = labels((5, 6, 7), n_labels=6)
    source = write_stack(tmp_path / "labelsTr" / f"case{ending}", seg, SPACING)
    io = Tiff3DIO()
    data, props = io.read_seg(source)
    assert np.array_equal(data[0], seg) and props == {"spacing": SPACING}

    out = tmp_path / "pred" / f"case{ending}"
    io.write_seg(data[0], out, props)
    assert json.loads((tmp_path / "pred" / "case.json").read_text()) == {"spacing": SPACING}
    back, back_props = io.read_seg(out)
    assert np.array_equal(back, data) and back_props == props
    assert sorted(p.name for p in out.parent.iterdir()) == ["case.json", out.name]


def test_labels_above_254_round_trip(tmp_path: Path) -> None:
    seg = (np.arange(4 * 5 * 6).reshape(4, 5, 6) * 3).astype(np.uint16)
    io = Tiff3DIO()
    io.write_seg(seg, tmp_path / "case.tif", {"spacing": (1, 2, 3)})
    assert tifffile.imread(tmp_path / "case.tif").dtype == np.uint16
    data, props = io.read_seg(tmp_path / "case.tif")
    assert np.array_equal(data[0], seg) and props == {"spacing": [1, 2, 3]}


def test_missing_sidecar_warns_and_assumes_unit_spacing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = write_stack(tmp_path / "case_0000.tif", labels((3, 4, 5)))
    with caplog.at_level(logging.WARNING):
        _, props = Tiff3DIO().read_images([source])
    assert props == {"spacing": (1, 1, 1)}
    assert "case_0000.tif" in caplog.text and "case.json" in caplog.text
    caplog.clear()
    seg = write_stack(tmp_path / "label.tif", labels((3, 4, 5)))
    with caplog.at_level(logging.WARNING):
        assert Tiff3DIO().read_seg(seg)[1] == {"spacing": (1, 1, 1)}
    assert "label.tif" in caplog.text


@pytest.mark.parametrize(
    "content",
    [
        '{"spacing": [1, 2]}',
        '{"spacing": [1, -2, 3]}',
        '{"spacing": [1, "a", 3]}',
        '{"spacings": [1, 2, 3]}',
        "{not json",
    ],
)
def test_bad_sidecar_raises(tmp_path: Path, content: str) -> None:
    source = write_stack(tmp_path / "case_0000.tif", labels((3, 4, 5)))
    (tmp_path / "case.json").write_text(content)
    with pytest.raises(ImageIOError, match="case.json"):
        Tiff3DIO().read_images([source])


def test_multichannel_case_and_mismatch(tmp_path: Path) -> None:
    files = [
        write_stack(tmp_path / f"case_{c:04d}.tif", intensities((3, 4, 5), np.int16, seed=c))
        for c in range(2)
    ]
    (tmp_path / "case.json").write_text(json.dumps({"spacing": SPACING}))
    data, props = Tiff3DIO().read_images(files)
    assert data.shape == (2, 3, 4, 5) and props["spacing"] == SPACING
    odd = write_stack(tmp_path / "case_0002.tif", labels((3, 4, 6)))
    with pytest.raises(ImageIOError, match="case_0002.tif"):
        Tiff3DIO().read_images([*files, odd])


def test_2d_tiff_raises(tmp_path: Path) -> None:
    source = write_stack(tmp_path / "flat_0000.tif", labels((4, 5)))
    with pytest.raises(ImageIOError, match="flat_0000.tif.*NaturalImage2DIO"):
        Tiff3DIO().read_images([source])


def test_corrupt_and_unsupported_files_raise(tmp_path: Path) -> None:
    good = write_stack(tmp_path / "good_0000.tif", intensities((8, 30, 30), np.float32))
    broken = tmp_path / "broken_0000.tif"
    broken.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ImageIOError, match="broken_0000.tif"):
        Tiff3DIO().read_images([broken])
    with pytest.raises(ImageIOError, match="case.png"):
        Tiff3DIO().read_images([tmp_path / "case.png"])
    with pytest.raises(ImageIOError, match="pred.png"):
        Tiff3DIO().write_seg(labels((2, 3, 4)), tmp_path / "pred.png", {"spacing": [1, 1, 1]})


def test_stack_of_three_slices_is_written_as_grayscale(tmp_path: Path) -> None:
    """tifffile would store a (3, y, x) array as one planar RGB page; segmentations are written as z pages."""
    seg = labels((3, 6, 7), n_labels=3)
    Tiff3DIO().write_seg(seg, tmp_path / "case.tif", {"spacing": SPACING})
    with tifffile.TiffFile(tmp_path / "case.tif") as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
    assert np.array_equal(Tiff3DIO().read_seg(tmp_path / "case.tif")[0][0], seg)


def test_nnunet_style_planar_stack_reads_as_three_slices(tmp_path: Path) -> None:
    stack = intensities((3, 6, 7), np.int16)
    tifffile.imwrite(tmp_path / "case_0000.tif", stack, photometric="rgb", planarconfig="separate")
    assert np.array_equal(Tiff3DIO().read_images([tmp_path / "case_0000.tif"])[0][0], stack)
