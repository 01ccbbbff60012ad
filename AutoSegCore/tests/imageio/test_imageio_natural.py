"""NaturalImage2DIO: PNG/BMP/2D TIFF, grayscale and colour, round trips and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from imageio_helpers import labels
from PIL import Image

from autoseg.errors import ImageIOError
from autoseg.imageio.natural_image_io import NaturalImage2DIO


def save_pillow(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path)
    return path


def rgb(shape: tuple[int, int], channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(*shape, channels)).astype(np.uint8)


@pytest.mark.parametrize("ending", [".png", ".bmp", ".tif"])
def test_grayscale_read_and_round_trip(tmp_path: Path, ending: str) -> None:
    seg = labels((13, 17), n_labels=5)
    source = tmp_path / f"case{ending}"
    tifffile.imwrite(source, seg) if ending == ".tif" else save_pillow(source, seg)
    io = NaturalImage2DIO()
    data, props = io.read_images([source])
    assert data.shape == (1, 1, 13, 17) and data.dtype == np.float32
    assert np.array_equal(data[0, 0], seg)
    assert props == {"spacing": (999, 1, 1)}

    out = tmp_path / "out" / f"pred{ending}"
    io.write_seg(data[0], out, props)
    back, back_props = io.read_seg(out)
    assert np.array_equal(back, data)
    assert back_props == props
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


@pytest.mark.parametrize(
    ("ending", "channels"),
    [(".png", 3), (".png", 4), (".bmp", 3), (".tif", 3), (".tif", 4)],  # Pillow's BMP drops alpha
)
def test_colour_images_become_channels(tmp_path: Path, ending: str, channels: int) -> None:
    pixels = rgb((11, 7), channels)
    source = tmp_path / f"case_0000{ending}"
    if ending == ".tif":
        tifffile.imwrite(source, pixels, photometric="rgb")
    else:
        save_pillow(source, pixels)
    data, _props = NaturalImage2DIO().read_images([source])
    assert data.shape == (channels, 1, 11, 7)
    assert np.array_equal(data[:, 0], pixels.transpose(2, 0, 1))


def test_planar_tiff_colour_axis_is_moved_last_like_skimage(tmp_path: Path) -> None:
    pixels = rgb((11, 7))
    source = tmp_path / "planar.tif"
    tifffile.imwrite(source, pixels.transpose(2, 0, 1), photometric="rgb", planarconfig="separate")
    data, _ = NaturalImage2DIO().read_images([source])
    assert np.array_equal(data[:, 0], pixels.transpose(2, 0, 1))


def test_16_bit_png_and_labels_above_254(tmp_path: Path) -> None:
    seg = (np.arange(12 * 20).reshape(12, 20) * 5).astype(np.uint16)
    source = tmp_path / "case.png"
    Image.fromarray(seg).save(source)
    io = NaturalImage2DIO()
    data, props = io.read_seg(source)
    assert np.array_equal(data[0, 0], seg)
    io.write_seg(data[0], tmp_path / "pred.png", props)
    assert np.array_equal(io.read_seg(tmp_path / "pred.png")[0], data)
    io.write_seg(data[0], tmp_path / "pred.tif", props)
    assert np.array_equal(io.read_seg(tmp_path / "pred.tif")[0], data)


def test_bmp_cannot_hold_16_bit_labels(tmp_path: Path) -> None:
    seg = np.full((1, 4, 5), 300, dtype=np.uint16)
    with pytest.raises(ImageIOError, match="pred.bmp"):
        NaturalImage2DIO().write_seg(seg, tmp_path / "pred.bmp", {"spacing": (999, 1, 1)})
    assert list(tmp_path.iterdir()) == []


def test_multichannel_case(tmp_path: Path) -> None:
    files = [save_pillow(tmp_path / f"case_{c:04d}.png", labels((8, 9), 200, seed=c)) for c in range(3)]
    data, _ = NaturalImage2DIO().read_images(files)
    assert data.shape == (3, 1, 8, 9)
    assert np.array_equal(data[2, 0], labels((8, 9), 200, seed=2))


def test_mismatched_channel_shapes_raise(tmp_path: Path) -> None:
    a = save_pillow(tmp_path / "case_0000.png", labels((8, 9)))
    b = save_pillow(tmp_path / "case_0001.png", labels((8, 10)))
    with pytest.raises(ImageIOError, match="case_0001.png"):
        NaturalImage2DIO().read_images([a, b])


def test_grayscale_and_rgb_cannot_be_mixed(tmp_path: Path) -> None:
    a = save_pillow(tmp_path / "case_0000.png", labels((8, 9)))
    b = save_pillow(tmp_path / "case_0001.png", rgb((8, 9)))
    with pytest.raises(ImageIOError, match="same shape"):
        NaturalImage2DIO().read_images([a, b])


@pytest.mark.parametrize("kind", ["rgba", "palette"])
def test_colour_segmentations_raise(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "label.png"
    if kind == "rgba":
        save_pillow(path, rgb((8, 9), 4))
    else:
        save_pillow(path, labels((8, 9)), mode="P")
    with pytest.raises(ImageIOError, match="label.png.*colour channels"):
        NaturalImage2DIO().read_seg(path)


def test_3d_tiff_stack_raises(tmp_path: Path) -> None:
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, labels((6, 8, 9)))
    with pytest.raises(ImageIOError, match="stack.tif.*Tiff3DIO"):
        NaturalImage2DIO().read_images([path])


def test_4d_tiff_raises(tmp_path: Path) -> None:
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, labels((2, 6, 8, 9)))
    with pytest.raises(ImageIOError, match="hyper.tif.*4 dimensions"):
        NaturalImage2DIO().read_images([path])


@pytest.mark.parametrize("name", ["broken.png", "broken.bmp", "broken.tif", "missing.png"])
def test_corrupt_files_raise(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if not name.startswith("missing"):
        good = tmp_path / f"good{Path(name).suffix}"
        save_pillow(good, rgb((40, 40)))
        path.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageIOError, match=name):
        NaturalImage2DIO().read_images([path])


def test_write_seg_wants_one_plane(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape"):
        NaturalImage2DIO().write_seg(labels((2, 4, 5)), tmp_path / "pred.png", {"spacing": (999, 1, 1)})
