"""Training data loading: nnU-Net's patch sampling (oracle), crops, 2d, cascade, background workers, errors."""

from __future__ import annotations

import pickle
import types
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from external_test_data import HIPPOCAMPUS

from autoseg.errors import AutoSegError
from autoseg.preprocessing import storage
from autoseg.preprocessing.class_locations import sample_class_locations
from autoseg.preprocessing.preprocessor import class_locations_from_json, class_locations_to_json
from autoseg.training import preprocessed_dataset
from autoseg.training.background_loader import BackgroundLoader, default_num_workers
from autoseg.training.data_loader import TrainingBatchLoader
from autoseg.training.patch_sampling import (
    SamplingLabels,
    choose_bbox,
    crop_and_pad,
    oversample_foreground,
    padding_margin,
    pseudo_3d,
)
from autoseg.training.preprocessed_dataset import PreprocessedDataset

LABELS = SamplingLabels((0, 1, 2))
LOWRES = "nnUNetTrainer__nnUNetPlans__3d_lowres"


# --------------------------------------------------------------------------- generated cases
def _segmentation(shape: tuple[int, ...], rng: np.random.RandomState, labels: tuple[int, ...] = (1, 2)) -> np.ndarray:
    """Background with one small box per label (sparse foreground, so random patches often miss it)."""
    seg = np.zeros((1, *shape), dtype=np.int8)
    for label in labels:
        size = [max(1, s // 6) for s in shape]
        start = [rng.randint(0, s - z + 1) for s, z in zip(shape, size)]
        seg[(0, *(slice(a, a + z) for a, z in zip(start, size)))] = label
    return seg


def write_case(
    folder: Path, identifier: str, shape: tuple[int, ...], rng: np.random.RandomState, channels: int = 1,
    seg: np.ndarray | None = None, keys: list | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One preprocessed case: unique data values (so a crop's origin can be found), a seg, class locations."""
    folder.mkdir(parents=True, exist_ok=True)
    data = (np.arange(channels * np.prod(shape), dtype=np.float32) + 1).reshape(channels, *shape)
    seg = _segmentation(shape, rng) if seg is None else seg
    locations = sample_class_locations(seg, keys if keys is not None else [1, 2])
    properties = {"spacing": [1.0] * len(shape), "class_locations": class_locations_to_json(locations)}
    storage.save_case(folder, identifier, data, seg, properties)
    return data, seg


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    folder = tmp_path / "Dataset123_Toy" / "nnUNetPlans_3d_fullres"
    rng = np.random.RandomState(0)
    for i, shape in enumerate([(20, 30, 25), (12, 40, 33), (7, 9, 8)]):
        write_case(folder, f"case_{i}", shape, rng)
    return folder


# --------------------------------------------------------------------------- nnU-Net oracle
def _nnunet_loader(patch_size, final_patch_size, labels: dict, batch_size: int = 2, dataset=None):
    loader_module = pytest.importorskip("nnunetv2.training.dataloading.data_loader")
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    data = dataset if dataset is not None else types.SimpleNamespace(identifiers=["a"])
    order = [1, 2] if any(isinstance(v, tuple) for v in labels.values()) else None
    return loader_module.nnUNetDataLoader(
        data, batch_size, patch_size, final_patch_size, LabelManager(labels, order),
        oversample_foreground_percent=0.33,
    )


def _random_locations(rng: np.random.RandomState, shape, keys) -> dict:
    """Class locations like preprocessing's: some classes empty, voxels anywhere in the case."""
    out = {}
    for key in keys:
        n = rng.choice([0, 1, 5, 50])
        out[key] = np.stack([np.zeros(n, dtype=np.int64), *(rng.randint(0, s, n) for s in shape)], axis=1)
    return out


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:.*annotated:UserWarning")
@pytest.mark.parametrize("regions", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("dim", [2, 3])
def test_bbox_matches_nnunet_get_bbox(dim: int, ignore: bool, regions: bool) -> None:
    label_dict = {"background": 0, "a": (1, 2) if regions else 1, "b": 2, **({"ignore": 3} if ignore else {})}
    labels = SamplingLabels((0, 1, 2), has_ignore=ignore)
    keys = [(1, 2), 2] if regions else [1, 2]
    keys += [labels.annotated_key] if ignore else []
    draw = np.random.RandomState(42)
    compared = 0
    for trial in range(60):
        final = [int(draw.randint(4, 40)) for _ in range(dim)]
        initial = [f + int(draw.randint(0, 20)) for f in final]
        theirs = _nnunet_loader(initial, final, label_dict)
        assert theirs.annotated_classes_key == labels.annotated_key and theirs.has_ignore == ignore
        margin = padding_margin(initial, final)
        assert np.array_equal(margin, theirs.need_to_pad)
        for _ in range(10):
            shape = [int(draw.randint(1, 8))] + [int(draw.randint(1, 70)) for _ in range(2)]
            locations = _random_locations(draw, shape, keys)
            force_fg = bool(draw.rand() < 0.5)
            seed = int(draw.randint(0, 2**31))
            np.random.seed(seed)
            expected = theirs.get_bbox(np.array(shape), force_fg, locations)
            rng = np.random.RandomState(seed)
            ours = choose_bbox(shape, pseudo_3d(initial), margin, force_fg, locations, labels, rng)
            assert ours == ([int(i) for i in expected[0]], [int(i) for i in expected[1]]), (trial, shape, force_fg)
            compared += 1
    assert compared == 600


def _write_nnunet_properties(folder: Path, identifiers: list[str]) -> None:
    """nnU-Net's .pkl properties next to our files (the .npy arrays are shared by both datasets)."""
    for identifier in identifiers:
        properties = storage.load_case(folder, identifier)[2]
        properties["class_locations"] = class_locations_from_json(properties["class_locations"])
        (folder / f"{identifier}.pkl").write_bytes(pickle.dumps(properties))


@pytest.mark.oracle
@pytest.mark.parametrize("patch", [(16, 24, 20), (24, 20)])
def test_whole_batches_match_nnunet(tmp_path: Path, patch: tuple[int, ...]) -> None:
    """Same cases, boxes, data and segmentation (incl. the cascade channel) as nnUNetDataLoader."""
    dataset_module = pytest.importorskip("nnunetv2.training.dataloading.nnunet_dataset")
    folder, previous = tmp_path / "pre", tmp_path / "prev"
    previous.mkdir()
    rng = np.random.RandomState(3)
    ids = [f"c{i}" for i in range(4)]
    for i, identifier in enumerate(ids):
        _, seg = write_case(folder, identifier, (9 + i, 30 - 2 * i, 25 + i), rng, channels=2)
        np.savez_compressed(previous / f"{identifier}.npz", seg=(3 - seg[0]).astype(np.uint8))
    _write_nnunet_properties(folder, ids)
    theirs_data = dataset_module.nnUNetDatasetNumpy(str(folder), list(ids), str(previous))
    initial = tuple(p + 6 for p in patch)
    theirs = _nnunet_loader(initial, patch, {"background": 0, "a": 1, "b": 2}, batch_size=5, dataset=theirs_data)
    ours = TrainingBatchLoader(
        PreprocessedDataset(folder, ids, previous), 5, patch, initial, 0.33, LABELS, transforms=_identity
    )
    for seed in range(8):
        np.random.seed(seed)
        expected = theirs.generate_train_batch()
        got = ours.generate_batch(np.random.RandomState(seed))
        assert got["keys"] == list(expected["keys"])
        assert torch.equal(got["data"], expected["data"])
        assert torch.equal(got["target"], expected["target"]) and got["target"].shape[1] == 2


def _identity(image: torch.Tensor, segmentation: torch.Tensor) -> dict:
    return {"image": image, "segmentation": segmentation}


# --------------------------------------------------------------------------- sampling rules
def test_oversampling_rule_is_the_last_third() -> None:
    for batch_size in range(1, 60):
        forced = [oversample_foreground(j, batch_size, 0.33) for j in range(batch_size)]
        assert sum(forced) == round(batch_size * 0.33)
        assert forced == sorted(forced)  # the forced ones come last
    assert not any(oversample_foreground(j, 8, 0.0) for j in range(8))


def test_last_samples_of_each_batch_contain_foreground(cases: Path) -> None:
    batch_size = 9
    loader = TrainingBatchLoader(PreprocessedDataset(cases), batch_size, (6, 6, 6), oversample_foreground_percent=0.33,
                                 labels=LABELS, seed=5)
    forced = round(batch_size * 0.33)
    background_only = 0
    for _ in range(20):
        target = loader.next_batch()["target"]
        assert target.shape == (batch_size, 1, 6, 6, 6) and target.dtype == torch.int16
        assert all((target[j] > 0).any() for j in range(batch_size - forced, batch_size))
        background_only += sum(not (target[j] > 0).any() for j in range(batch_size - forced))
    assert background_only > 0  # the unforced samples really are random


def test_cases_without_foreground_fall_back_to_random_boxes() -> None:
    rng = np.random.RandomState(0)
    empty = {1: np.zeros((0, 4), dtype=np.int64), 2: np.zeros((0, 4), dtype=np.int64)}
    no_margin = np.zeros(3, int)
    boxes = {tuple(choose_bbox((10,) * 3, (4,) * 3, no_margin, True, empty, LABELS, rng)[0]) for _ in range(30)}
    assert len(boxes) > 1 and all(0 <= c <= 6 for box in boxes for c in box)


def test_ignore_label_samples_annotated_voxels_and_prefers_real_classes() -> None:
    from autoseg.dataset.dataset_json import DatasetJson

    raw = {"channel_names": {"0": "T1"}, "labels": {"background": 0, "a": 1, "ignore": 2}, "numTraining": 1,
           "file_ending": ".nii.gz"}
    labels = SamplingLabels.from_dataset_json(DatasetJson.from_dict(raw))
    assert labels == SamplingLabels((0, 1), has_ignore=True) and labels.annotated_key == (-1, 0, 1)
    annotated = np.array([[0, 5, 5, 5]])
    locations = {1: np.array([[0, 1, 1, 1]]), labels.annotated_key: annotated}
    rng = np.random.RandomState(1)
    crop = (3, 3, 3)
    unforced = choose_bbox((20, 20, 20), crop, np.zeros(3, int), False, locations, labels, rng)
    assert unforced == ([4, 4, 4], [7, 7, 7])  # centred on the only annotated voxel
    forced = choose_bbox((20, 20, 20), crop, np.zeros(3, int), True, locations, labels, rng)
    assert forced == ([0, 0, 0], [3, 3, 3])  # label 1 wins over "annotated"


# --------------------------------------------------------------------------- crop and pad
def test_crop_and_pad_matches_a_padded_reference() -> None:
    rng = np.random.RandomState(0)
    array = rng.rand(2, 5, 6, 7).astype(np.float32)
    padded = np.pad(array, [(0, 0)] + [(20, 20)] * 3, constant_values=-7)
    for _ in range(200):
        lower = [int(rng.randint(-20, s + 5)) for s in array.shape[1:]]
        upper = [lo + int(rng.randint(1, 15)) for lo in lower]
        got = crop_and_pad(array, lower, upper, -7, np.float32)
        expected = padded[(slice(None), *(slice(lo + 20, u + 20) for lo, u in zip(lower, upper)))]
        assert np.array_equal(got, expected)


def test_patch_larger_than_case_is_padded_around_it(tmp_path: Path) -> None:
    folder = tmp_path / "pre"
    data, seg = write_case(folder, "tiny", (3, 4, 5), np.random.RandomState(0))
    patch = (8, 10, 12)
    loader = TrainingBatchLoader(PreprocessedDataset(folder), 4, patch, labels=LABELS, seed=0)
    for _ in range(5):
        batch = loader.next_batch()
        for image, target in zip(batch["data"], batch["target"]):
            inside = image[0] != 0
            z, y, x = (np.flatnonzero(inside.any(dim=tuple(a for a in range(3) if a != d))) for d in range(3))
            box = (slice(z[0], z[-1] + 1), slice(y[0], y[-1] + 1), slice(x[0], x[-1] + 1))
            assert [len(z), len(y), len(x)] == [3, 4, 5]  # the whole case lies inside the patch
            assert np.array_equal(image[0][box].numpy(), data[0])
            assert np.array_equal(target[0][box].numpy(), seg[0])
            assert (target[0][~inside] == -1).all() and (image[0][~inside] == 0).all()


class RecordingMemmap(np.memmap):
    """A memmap that records how many elements each read produces."""

    reads: list[int] = []

    def __getitem__(self, key):
        result = super().__getitem__(key)
        if isinstance(result, np.ndarray):
            RecordingMemmap.reads.append(result.size)
        return result


def test_only_the_patch_region_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "pre"
    write_case(folder, "big", (40, 50, 60), np.random.RandomState(0), channels=2)
    real_load, modes = np.load, []

    def load(file, mmap_mode=None, **kwargs):
        modes.append(mmap_mode)
        array = real_load(file, mmap_mode=mmap_mode, **kwargs)
        return array.view(RecordingMemmap) if isinstance(array, np.memmap) else array

    monkeypatch.setattr(preprocessed_dataset.np, "load", load)
    RecordingMemmap.reads = []
    dataset = PreprocessedDataset(folder)
    case = dataset.load_case("big")
    assert isinstance(case.data, np.memmap) and isinstance(case.seg, np.memmap) and modes == ["r", "r"]
    batch = TrainingBatchLoader(dataset, 6, (8, 9, 10), labels=LABELS, seed=0).next_batch()
    assert batch["data"].shape == (6, 2, 8, 9, 10)
    patch_elements = 2 * 8 * 9 * 10
    assert len(RecordingMemmap.reads) == 12  # one read of data and one of seg per sample
    assert 0 < max(RecordingMemmap.reads) <= patch_elements < case.data.size // 100


# --------------------------------------------------------------------------- 2d, cascade
def test_2d_samples_are_single_slices(cases: Path) -> None:
    dataset = PreprocessedDataset(cases)
    loader = TrainingBatchLoader(dataset, 6, (6, 7), labels=LABELS, seed=3)
    for _ in range(10):
        batch = loader.next_batch()
        assert batch["data"].shape == (6, 1, 6, 7) and batch["target"].shape == (6, 1, 6, 7)
        for j, key in enumerate(batch["keys"]):
            case = dataset.load_case(key)
            image, target = batch["data"][j, 0].numpy(), batch["target"][j, 0].numpy()
            first = image[image > 0].min()  # unique values locate the slice and the in-plane origin
            z, y, x = np.unravel_index(int(first) - 1, case.data.shape[1:])
            rows, cols = np.flatnonzero((image > 0).any(1)), np.flatnonzero((image > 0).any(0))
            window = (slice(y, y + len(rows)), slice(x, x + len(cols)))
            assert np.array_equal(image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], case.data[0, z][window])
            assert np.array_equal(target[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], case.seg[0, z][window])
            if j >= 6 - round(6 * 0.33):
                assert (target > 0).any()  # the forced slice goes through foreground


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".b2nd"])
def test_cascade_appends_the_aligned_previous_stage(cases: Path, tmp_path: Path, suffix: str) -> None:
    previous = tmp_path / "results" / "Dataset123_Toy" / LOWRES / "predicted_next_stage" / "3d_cascade_fullres"
    previous.mkdir(parents=True)
    for identifier in storage.list_cases(cases):
        prediction = ((storage.load_case(cases, identifier)[1][0] + 1) % 3).astype(np.uint8)  # (z, y, x) like nnU-Net
        if suffix == ".npz":
            np.savez_compressed(previous / f"{identifier}.npz", seg=prediction)
        elif suffix == ".b2nd":  # nnU-Net >= 2.5 (blosc2 is in the test environment, nnU-Net's dependency)
            import blosc2

            blosc2.asarray(np.ascontiguousarray(prediction[None]), urlpath=str(previous / f"{identifier}.b2nd"),
                           mode="w")
        else:
            np.save(previous / f"{identifier}.npy", prediction[None])
    loader = TrainingBatchLoader(PreprocessedDataset(cases, previous_stage_folder=previous), 5, (10, 12, 14),
                                 labels=LABELS, seed=2)
    for _ in range(4):
        target = loader.next_batch()["target"]
        assert target.shape == (5, 2, 10, 12, 14)
        seg, prev = target[:, 0], target[:, 1]
        assert torch.equal(seg == -1, prev == -1)  # same padding: the channels are aligned
        assert torch.equal(prev[seg >= 0], (seg[seg >= 0] + 1) % 3)


# --------------------------------------------------------------------------- reproducibility, transforms
class RandomFlip:
    """A picklable transform drawing from torch's global generator."""

    def __call__(self, image: torch.Tensor, segmentation: torch.Tensor) -> dict:
        axes = [d + 1 for d in range(image.ndim - 1) if torch.rand(()) < 0.5]
        inner = (slice(None), slice(1, -1), slice(1, -1), slice(1, -1))
        image, segmentation = torch.flip(image, axes)[inner], torch.flip(segmentation, axes)[inner]
        return {"image": image + torch.rand(()), "segmentation": [segmentation, segmentation[:, ::2, ::2, ::2]]}


class FailingTransform:
    def __call__(self, image: torch.Tensor, segmentation: torch.Tensor) -> dict:
        raise ValueError("augmentation exploded on purpose")


def _flip_loader(folder: Path, seed: int | None = 7) -> TrainingBatchLoader:
    return TrainingBatchLoader(PreprocessedDataset(folder), 3, (6, 6, 6), (8, 8, 8), 0.33, LABELS, RandomFlip(), seed)


def test_seeded_batches_are_reproducible_and_leave_global_generators_alone(cases: Path) -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    before = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(0)
    np.random.seed(0)
    first = [_flip_loader(cases).next_batch() for _ in range(1)][0]
    after = (torch.rand(3), np.random.rand(3))
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    again = _flip_loader(cases).batch(0)
    other = _flip_loader(cases, seed=8).batch(0)
    assert first["data"].shape == (3, 1, 6, 6, 6)
    assert [t.shape for t in first["target"]] == [(3, 1, 6, 6, 6), (3, 1, 3, 3, 3)]
    assert torch.equal(first["data"], again["data"]) and torch.equal(first["target"][1], again["target"][1])
    assert not torch.equal(first["data"], other["data"])


# --------------------------------------------------------------------------- background loader
def test_background_workers_yield_the_sequential_batches(cases: Path) -> None:
    sequential = [_flip_loader(cases).batch(i) for i in range(6)]
    with BackgroundLoader(_flip_loader(cases), num_workers=0) as inline:
        assert all(torch.equal(next(inline)["data"], s["data"]) for s in sequential)
    background = BackgroundLoader(_flip_loader(cases), num_workers=2, prefetch=1)
    pids = [p.pid for p in background._workers]
    with background:
        for expected in sequential:
            got = next(background)
            assert got["keys"] == expected["keys"] and torch.equal(got["data"], expected["data"])
            assert all(torch.equal(a, b) for a, b in zip(got["target"], expected["target"]))
    assert all(not p.is_alive() and p.exitcode is not None for p in background._workers)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    with pytest.raises(AutoSegError, match="closed"):
        next(background)


def test_worker_failure_surfaces_with_its_traceback(cases: Path) -> None:
    dataset = PreprocessedDataset(cases)
    loader = TrainingBatchLoader(dataset, 2, (6, 6, 6), (8, 8, 8), 0.33, LABELS, FailingTransform(), seed=1)
    background = BackgroundLoader(loader, num_workers=1)
    with pytest.raises(AutoSegError) as error:
        next(background)
    assert "augmentation exploded on purpose" in str(error.value) and "Traceback" in str(error.value)
    assert "test_data_loading.py" in str(error.value)  # the frame where it failed
    assert not background._workers[0].is_alive()


def test_interrupt_inside_with_block_stops_workers(cases: Path) -> None:
    with pytest.raises(KeyboardInterrupt), BackgroundLoader(_flip_loader(cases), num_workers=1) as background:
        next(background)
        raise KeyboardInterrupt
    assert not background._workers[0].is_alive()


def test_killed_worker_is_reported(cases: Path) -> None:
    background = BackgroundLoader(_flip_loader(cases), num_workers=1, prefetch=1)
    next(background)
    background._workers[0].kill()
    with pytest.raises(AutoSegError, match="stopped unexpectedly"):
        for _ in range(5):
            next(background)


def test_unpicklable_transforms_are_refused_with_advice(cases: Path) -> None:
    loader = TrainingBatchLoader(PreprocessedDataset(cases), 2, (6, 6, 6), transforms=lambda **k: k, labels=LABELS)
    with pytest.raises(AutoSegError, match="picklable"):
        BackgroundLoader(loader, num_workers=1)


def test_default_num_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from autoseg.training import background_loader

    monkeypatch.setattr(background_loader, "available_cpus", lambda: 16)
    assert default_num_workers("cuda", {}) == 12
    assert default_num_workers("cpu", {}) == 2
    assert default_num_workers("cuda", {"nnUNet_n_proc_DA": "20"}) == 16  # capped by the CPUs
    assert default_num_workers("cpu", {"nnUNet_n_proc_DA": "0"}) == 0
    monkeypatch.setattr(background_loader, "available_cpus", lambda: 2)
    assert default_num_workers("cpu", {}) == 0 and default_num_workers("cuda", {}) == 2
    with pytest.raises(AutoSegError, match="nnUNet_n_proc_DA"):
        default_num_workers("cuda", {"nnUNet_n_proc_DA": "twelve"})


# --------------------------------------------------------------------------- errors
def test_missing_preprocessed_data_names_the_command(tmp_path: Path, cases: Path) -> None:
    with pytest.raises(AutoSegError, match=r"autoseg plan_and_preprocess -d Dataset123_Toy -c 2d"):
        PreprocessedDataset(cases.parent / "nnUNetPlans_2d")
    (cases / "case_1_seg.npy").unlink()
    with pytest.raises(AutoSegError, match=r"case_1.*plan_and_preprocess -d Dataset123_Toy -c 3d_fullres"):
        PreprocessedDataset(cases, ["case_0", "case_1"])
    dataset = PreprocessedDataset(cases, ["case_0"])
    (cases / "case_0.npy").unlink()
    with pytest.raises(AutoSegError, match=r"case_0.*can no longer be read"):
        dataset.load_case("case_0")


def test_missing_previous_stage_names_the_lowres_training(cases: Path, tmp_path: Path) -> None:
    previous = tmp_path / "Dataset123_Toy" / LOWRES / "predicted_next_stage" / "3d_cascade_fullres"
    previous.mkdir(parents=True)
    np.savez_compressed(previous / "case_0.npz", seg=np.zeros((20, 30, 25), np.uint8))
    with pytest.raises(AutoSegError, match=r"lacks 2 of 3 .*autoseg train Dataset123_Toy 3d_lowres FOLD"):
        PreprocessedDataset(cases, previous_stage_folder=previous)
    np.savez_compressed(previous / "case_1.npz", seg=np.zeros((3, 3, 3), np.uint8))
    dataset = PreprocessedDataset(cases, ["case_0", "case_1"], previous)
    assert dataset.load_case("case_0").previous_stage.shape == (20, 30, 25)
    with pytest.raises(AutoSegError, match=r"shape \(3, 3, 3\).*\(12, 40, 33\)"):
        dataset.load_case("case_1")


# --------------------------------------------------------------------------- real data
def test_real_hippocampus_cases(tmp_path: Path) -> None:
    """Two Hippocampus cases at nnU-Net's 3d_fullres patch and batch size: shapes and forced foreground."""
    if not (HIPPOCAMPUS / "labelsTr").is_dir():
        pytest.skip("Hippocampus data not available")
    sitk = pytest.importorskip("SimpleITK")
    folder = tmp_path / "Dataset004_Hippocampus" / "nnUNetPlans_3d_fullres"
    for identifier in ("hippocampus_001", "hippocampus_003"):
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(HIPPOCAMPUS / "imagesTr" / f"{identifier}_0000.nii.gz")))
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(HIPPOCAMPUS / "labelsTr" / f"{identifier}.nii.gz")))
        data = ((image - image.mean()) / image.std()).astype(np.float32)[None]
        seg = seg.astype(np.int8)[None]
        locations = class_locations_to_json(sample_class_locations(seg, [1, 2]))
        storage.save_case(folder, identifier, data, seg, {"class_locations": locations})
    loader = TrainingBatchLoader(PreprocessedDataset(folder), 9, (40, 56, 40), labels=LABELS, seed=0)
    for _ in range(3):
        batch = loader.next_batch()
        assert batch["data"].shape == (9, 1, 40, 56, 40) and batch["data"].dtype == torch.float32
        assert all((batch["target"][j] > 0).any() for j in range(6, 9))
        assert set(batch["target"].unique().tolist()) <= {-1, 0, 1, 2}
