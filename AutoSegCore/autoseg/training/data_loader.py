"""Training batches: sample cases, crop (possibly enlarged) patches, augment, stack.

Batch ``i`` of a loader is a pure function of ``(seed, i)``: its case choice and boxes use a
``RandomState`` derived from both, and the transforms run with torch's and numpy's global generators
seeded from them too (inside a fork that restores the caller's generator state afterwards). So a
seeded loader gives the same batches however many background processes build them, in whatever order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import torch

from autoseg.training.patch_sampling import (
    SamplingLabels,
    choose_bbox,
    crop_and_pad,
    oversample_foreground,
    padding_margin,
    pseudo_3d,
)
from autoseg.training.preprocessed_dataset import PreprocessedDataset, TrainingCase

Transforms = Callable[..., dict[str, Any]]
Batch = dict[str, Any]


class TrainingBatchLoader:
    """Endless random batches of ``batch_size`` patches from ``dataset``.

    ``patch_size`` is the plan's (final) patch size: 3 entries, or 2 for 2d configurations, whose
    samples are single slices ``(c, y, x)``. With ``transforms`` the loader crops
    ``initial_patch_size`` (the enlarged size the spatial augmentation needs, default ``patch_size``)
    and ``transforms(image=..., segmentation=...)`` must return the final-size ``"image"`` and
    ``"segmentation"`` (a tensor, or a list of tensors for deep supervision); without transforms it
    crops ``patch_size``. The last ``round(batch_size * oversample_foreground_percent)`` samples of
    every batch contain foreground; ``labels`` (``SamplingLabels.from_dataset_json``) matters for
    datasets with an ignore label, whose unforced patches are centred on annotated voxels.
    Batches are ``{"data": (b, c, *patch) float32, "target": (b, 1 [+1 cascade], *patch) int16
    (-1 outside the case) or what the transforms return, "keys": case identifiers}``.
    """

    def __init__(
        self,
        dataset: PreprocessedDataset,
        batch_size: int,
        patch_size: Sequence[int],
        initial_patch_size: Sequence[int] | None = None,
        oversample_foreground_percent: float = 0.33,
        labels: SamplingLabels | None = None,
        transforms: Transforms | None = None,
        seed: int | None = None,
    ) -> None:
        if len(patch_size) not in (2, 3):
            raise ValueError(f"patch_size must have 2 or 3 entries, got {list(patch_size)}")
        initial = patch_size if initial_patch_size is None or transforms is None else initial_patch_size
        if len(initial) != len(patch_size) or any(i < p for i, p in zip(initial, patch_size)):
            raise ValueError(
                f"initial_patch_size {list(initial)} must cover patch_size {list(patch_size)} on every axis"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.is_2d = len(self.patch_size) == 2
        self.crop_size = pseudo_3d(initial)
        self.margin = padding_margin(initial, patch_size)
        self.oversample_foreground_percent = oversample_foreground_percent
        self.labels = labels if labels is not None else SamplingLabels(())
        self.transforms = transforms
        self.seed = seed
        # without a seed, a fresh SeedSequence draws the entropy (an int)
        entropy = int(seed) if seed is not None else cast(int, np.random.SeedSequence().entropy)
        self._entropy = entropy % 2**64
        self.batches_generated = 0

    def __iter__(self) -> TrainingBatchLoader:
        return self

    def __next__(self) -> Batch:
        return self.next_batch()

    def next_batch(self) -> Batch:
        """The next batch of this loader's sequence."""
        batch = self.batch(self.batches_generated)
        self.batches_generated += 1
        return batch

    def batch(self, index: int) -> Batch:
        """Batch number ``index`` of the sequence (deterministic for a given seed)."""
        states = np.random.SeedSequence((self._entropy, int(index))).generate_state(6)
        rng = np.random.RandomState(states[:4])
        with _seeded_global_generators(int(states[4]) << 32 | int(states[5])), _one_torch_thread():
            return self.generate_batch(rng)

    def generate_batch(self, rng: np.random.RandomState) -> Batch:
        """One batch drawing cases and boxes from ``rng`` in nnU-Net's order."""
        keys = [self.dataset.identifiers[i] for i in rng.choice(len(self.dataset.identifiers), self.batch_size)]
        data_all: torch.Tensor | None = None
        seg_all: torch.Tensor | list[torch.Tensor] | None = None
        with torch.no_grad():
            for j, key in enumerate(keys):
                force_fg = oversample_foreground(j, self.batch_size, self.oversample_foreground_percent)
                image, seg = self.sample(self.dataset.load_case(key), force_fg, rng)
                if self.transforms is not None:
                    out = self.transforms(image=image, segmentation=seg)
                    image, seg = out["image"], out["segmentation"]
                if data_all is None or seg_all is None:  # the first sample: both are None
                    data_all = torch.empty((self.batch_size, *image.shape), dtype=torch.float32)
                    seg_all = (
                        [torch.empty((self.batch_size, *s.shape), dtype=s.dtype) for s in seg]
                        if isinstance(seg, (list, tuple))
                        else torch.empty((self.batch_size, *seg.shape), dtype=seg.dtype)
                    )
                data_all[j] = image
                if isinstance(seg_all, list):
                    for target, s in zip(seg_all, seg):
                        target[j] = s
                else:
                    seg_all[j] = seg
        return {"data": data_all, "target": seg_all, "keys": keys}

    def sample(
        self, case: TrainingCase, force_fg: bool, rng: np.random.RandomState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop one (image, segmentation) pair of the crop size; 2d: a single slice ``(c, y, x)``.

        The previous stage's prediction (cascade) becomes an extra segmentation channel.
        """
        shape = case.data.shape[1:]
        lower, upper = choose_bbox(
            shape, self.crop_size, self.margin, force_fg, case.properties.get("class_locations"), self.labels, rng
        )
        image = torch.from_numpy(crop_and_pad(case.data, lower, upper, 0, np.float32))
        seg = torch.from_numpy(crop_and_pad(case.seg, lower, upper, -1, np.int16))
        if case.previous_stage is not None:
            previous = torch.from_numpy(crop_and_pad(case.previous_stage, lower, upper, -1, np.int16))
            seg = torch.cat((seg, previous[None]))
        if self.is_2d:
            image, seg = image[:, 0], seg[:, 0]
        return image, seg


@contextmanager
def _one_torch_thread():
    """Run small tensor operations single-threaded (like nnU-Net's ``threadpool_limits(1)``).

    Per-patch copies and augmentations gain nothing from torch's thread pool and, on busy cores,
    lose up to 40x waiting for it; switching the pool size costs about a microsecond.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def _seeded_global_generators(seed: int):
    """Seed torch's CPU and numpy's global generators for a block, restoring their state afterwards."""
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
