"""Largest-component removal: connectivity, ties, 2D/3D, bounding boxes, and agreement with acvl_utils."""

from __future__ import annotations

import numpy as np
import pytest
from acvl_utils.morphology.morphology_helper import remove_all_but_largest_component

from autoseg.postprocessing.connected_components import (
    bounding_box,
    full_connectivity,
    largest_component,
    smaller_components,
)


def test_corner_touching_voxels_are_one_component_in_3d() -> None:
    mask = np.zeros((5, 5, 5), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = mask[3, 3, 3] = True  # a diagonal chain: 26-connected
    mask[0, 4, 4] = mask[0, 4, 3] = True  # separate, 2 voxels
    kept = largest_component(mask)
    assert kept[1, 1, 1] and kept[2, 2, 2] and kept[3, 3, 3]
    assert not kept[0, 4, 4] and not kept[0, 4, 3]


def test_diagonal_neighbours_connect_in_2d() -> None:
    mask = np.array([[1, 0, 0, 0, 1],
                     [0, 1, 0, 0, 1],
                     [0, 0, 1, 0, 0]], bool)
    kept = largest_component(mask)
    assert kept.tolist() == [[True, False, False, False, False],
                             [False, True, False, False, False],
                             [False, False, True, False, False]]


def test_ties_for_the_largest_size_are_all_kept() -> None:
    mask = np.zeros((1, 6, 6), bool)
    mask[0, 0, 0:2] = True
    mask[0, 4, 4:6] = True
    mask[0, 2, 3] = True  # a smaller one
    kept = largest_component(mask)
    assert kept[0, 0, 0:2].all() and kept[0, 4, 4:6].all() and not kept[0, 2, 3]
    tie_only = mask.copy()
    tie_only[0, 2, 3] = False
    assert smaller_components(tie_only) is None


def test_empty_and_single_component_masks_remove_nothing() -> None:
    assert smaller_components(np.zeros((4, 4, 4), bool)) is None
    assert largest_component(np.zeros((4, 4), bool)).sum() == 0
    block = np.zeros((8, 8, 8), bool)
    block[2:5, 2:6, 3:7] = True
    assert smaller_components(block) is None
    assert np.array_equal(largest_component(block), block)


def test_input_is_not_modified_and_non_bool_input_is_accepted() -> None:
    mask = np.zeros((6, 6), np.uint8)
    mask[0, 0] = 1
    mask[3:6, 3:6] = 7
    before = mask.copy()
    kept = largest_component(mask)
    assert kept.dtype == bool and kept.sum() == 9 and not kept[0, 0]
    assert np.array_equal(mask, before)


def test_bounding_box() -> None:
    mask = np.zeros((10, 12, 14), bool)
    mask[2, 3, 4] = mask[5, 9, 11] = True
    assert bounding_box(mask) == (slice(2, 6), slice(3, 10), slice(4, 12))
    assert bounding_box(np.zeros((3, 3), bool)) is None
    assert bounding_box(np.array([0, 1, 1, 0], bool)) == (slice(1, 3),)
    assert full_connectivity(2).shape == (3, 3) and full_connectivity(3).all()


@pytest.mark.parametrize("shape", [(40, 50), (20, 30, 25), (1, 30, 30)])
@pytest.mark.parametrize("density", [0.05, 0.3, 0.55])
def test_matches_acvl_utils_on_random_masks(shape: tuple[int, ...], density: float) -> None:
    rng = np.random.default_rng(abs(hash((shape, density))) % 2**32)
    for _ in range(3):
        mask = rng.random(shape) < density
        assert np.array_equal(largest_component(mask), remove_all_but_largest_component(mask))
