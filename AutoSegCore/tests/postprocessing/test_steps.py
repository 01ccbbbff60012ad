"""Step semantics: nnU-Net's remove_all_but_largest_component_from_segmentation on labels, lists, regions."""

from __future__ import annotations

import numpy as np
import pytest

from autoseg.errors import PostprocessingError
from autoseg.postprocessing.steps import (
    PostprocessingStep,
    apply_steps,
    remove_all_but_largest_component_from_segmentation,
)


def _segmentation() -> np.ndarray:
    """Label 1 block touching a label 2 block, a stray label 1 voxel and a stray label 2 pair."""
    seg = np.zeros((6, 10, 10), np.float32)
    seg[1:4, 1:4, 1:4] = 1
    seg[1:4, 4:6, 1:4] = 2  # touches label 1
    seg[5, 9, 9] = 1
    seg[0, 9, 0:2] = 2
    seg[5, 0, 9] = 3
    return seg


def test_single_label_keeps_its_own_largest_component_only() -> None:
    seg = _segmentation()
    out = PostprocessingStep(1).apply(seg)
    assert out[5, 9, 9] == 0
    assert np.array_equal(out[seg != 1], seg[seg != 1])  # other labels untouched
    assert out.dtype == seg.dtype


def test_list_of_labels_is_one_mask() -> None:
    seg = _segmentation()
    out = PostprocessingStep([1, 2]).apply(seg)
    assert out[5, 9, 9] == 0 and (out[0, 9, 0:2] == 0).all()
    assert (out[1:4, 1:4, 1:4] == 1).all() and (out[1:4, 4:6, 1:4] == 2).all()
    assert out[5, 0, 9] == 3  # label 3 is not part of the mask


def test_region_is_the_union_of_its_labels() -> None:
    seg = _segmentation()
    assert np.array_equal(PostprocessingStep((1, 2)).apply(seg), PostprocessingStep([1, 2]).apply(seg))
    # a label-2 step alone keeps the 18-voxel block and removes the stray pair
    out = PostprocessingStep((2,)).apply(seg)
    assert (out[0, 9, 0:2] == 0).all() and out[5, 9, 9] == 1


def test_mixed_list_of_labels_and_regions() -> None:
    seg = _segmentation()
    out = PostprocessingStep([3, (1, 2)]).apply(seg)
    # the union of 1, 2, 3 has the big block as largest component; strays of 1, 2 and 3 go
    assert out[5, 9, 9] == 0 and out[5, 0, 9] == 0 and (out[0, 9, 0:2] == 0).all()


def test_background_label_and_input_untouched() -> None:
    seg = _segmentation()
    before = seg.copy()
    out = PostprocessingStep(1, background_label=9).apply(seg)
    assert out[5, 9, 9] == 9
    assert np.array_equal(seg, before)


def test_works_in_2d() -> None:
    seg = np.zeros((8, 8), np.uint8)
    seg[0:3, 0:3] = 1
    seg[3, 3] = 1  # diagonal neighbour: same component
    seg[6, 6] = 1
    out = PostprocessingStep(1).apply(seg)
    assert out[3, 3] == 1 and out[6, 6] == 0


def test_apply_steps_in_order_and_nnunet_named_function() -> None:
    seg = _segmentation()
    steps = [PostprocessingStep([1, 2]), PostprocessingStep(1)]
    expected = PostprocessingStep(1).apply(PostprocessingStep([1, 2]).apply(seg))
    assert np.array_equal(apply_steps(seg, steps), expected)
    assert np.array_equal(apply_steps(seg, []), seg)
    assert np.array_equal(remove_all_but_largest_component_from_segmentation(seg, (1, 2)),
                          PostprocessingStep((1, 2)).apply(seg))


def test_normalisation_equality_and_description() -> None:
    assert PostprocessingStep(np.int64(2)).labels_or_regions == 2
    assert PostprocessingStep([np.int64(1), [2, 3]]).labels_or_regions == [1, (2, 3)]
    assert PostprocessingStep([1, 2]) == PostprocessingStep([1, 2])
    assert PostprocessingStep([1, 2]) != PostprocessingStep((1, 2))  # same effect, different form
    assert len({PostprocessingStep(1), PostprocessingStep(1)}) == 1
    assert PostprocessingStep((1, 2)).values == (1, 2)
    assert PostprocessingStep([1, 2]).describe() == "labels [1, 2]"
    assert PostprocessingStep((1, 2)).describe() == "region (1, 2)"


@pytest.mark.parametrize("bad", ["1", 1.5, [], (), [None], True])
def test_invalid_targets_are_rejected(bad: object) -> None:
    with pytest.raises(PostprocessingError):
        PostprocessingStep(bad)  # type: ignore[arg-type]
