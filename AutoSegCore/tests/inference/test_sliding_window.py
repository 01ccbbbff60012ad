"""Sliding-window pieces against nnU-Net v2's (the oracle): steps, Gaussian, padding, mirroring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window

from autoseg.inference.sliding_window import (
    compute_steps,
    gaussian_importance_map,
    mirror_axes_combinations,
    pad_to_patch,
    predict_with_mirroring,
    window_slicers,
)

pytestmark = pytest.mark.oracle


@pytest.mark.parametrize("image,patch,step", [
    ((40, 56, 40), (40, 56, 40), 0.5), ((100, 57, 41), (40, 56, 40), 0.5), ((333, 200, 97), (64, 128, 96), 0.5),
    ((300, 300), (128, 96), 0.25), ((129, 65, 64), (64, 64, 64), 0.75), ((64, 64, 64), (64, 64, 64), 1.0),
])
def test_steps_match_nnunet(image, patch, step):
    assert compute_steps(image, patch, step) == compute_steps_for_sliding_window(image, patch, step)


def test_steps_reject_small_image_and_bad_step():
    with pytest.raises(ValueError, match="smaller than the patch"):
        compute_steps((10, 50), (20, 20), 0.5)
    with pytest.raises(ValueError, match="step_size"):
        compute_steps((40, 40), (20, 20), 0.0)


@pytest.mark.parametrize("patch", [(40, 56, 40), (56, 40), (28, 256, 224), (1, 3, 5)])
def test_gaussian_matches_nnunet_bitwise(patch):
    ours = gaussian_importance_map(patch)
    theirs = compute_gaussian(patch, sigma_scale=1.0 / 8, value_scaling_factor=10, device=torch.device("cpu"))
    assert ours.dtype == theirs.dtype == torch.float16
    assert torch.equal(ours, theirs)
    assert bool((ours > 0).all())


@pytest.mark.parametrize("shape,patch", [((2, 30, 60, 33), (40, 56, 40)), ((1, 50, 70, 45), (40, 56, 40)),
                                         ((3, 12, 17, 90), (32, 32)), ((1, 9, 31, 32), (32, 32))])
def test_padding_matches_nnunet(shape, patch):
    image = torch.rand(shape)
    ours, revert = pad_to_patch(image, patch)
    theirs, their_revert = pad_nd_image(image, patch, "constant", {"value": 0}, True, None)
    assert torch.equal(ours, theirs)
    assert torch.equal(ours[revert], image)
    assert torch.equal(theirs[tuple(their_revert)], image)


def test_window_slicers_2d_patch_on_3d_image_cover_every_slice():
    slicers = window_slicers((3, 50, 40), (32, 32), 0.5)
    assert {s[1] for s in slicers} == {0, 1, 2}
    assert len(slicers) == 3 * 3 * 2
    covered = np.zeros((3, 50, 40), bool)
    for s in slicers:
        covered[s[1:]] = True
    assert covered.all()


def test_mirror_combinations_and_mean():
    assert mirror_axes_combinations((0, 1, 2)) == [(2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)]
    assert mirror_axes_combinations(None) == []
    # a flip-equivariant "network" gives the same output with and without mirroring
    x = torch.rand(1, 2, 6, 5, 4)
    same = predict_with_mirroring(lambda t: t * 2, x, (0, 1, 2))
    assert torch.allclose(same, x * 2)
    # a position-dependent one is averaged over the flips, batched or not
    ramp = torch.arange(4.0).view(1, 1, 1, 1, 4)
    net = lambda t: t + ramp  # noqa: E731
    one_by_one = predict_with_mirroring(net, x, (2,))
    batched = predict_with_mirroring(net, x, (2,), batch_mirrors=True)
    assert torch.allclose(one_by_one, x + 1.5) and torch.allclose(batched, one_by_one)
    with pytest.raises(ValueError):
        predict_with_mirroring(net, x[:, :, 0], (0, 1, 2))
