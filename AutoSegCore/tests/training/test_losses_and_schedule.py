"""Losses, deep-supervision weights and the LR schedule against nnU-Net v2's (the oracle); trainer names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

from autoseg.errors import AutoSegError
from autoseg.training.losses import (
    DiceBCELoss,
    DiceCELoss,
    build_loss,
    deep_supervision_scales,
    deep_supervision_weights,
)
from autoseg.training.schedule import build_optimizer, poly_lr
from autoseg.training.settings import mirror_axes_for, settings_for_trainer

pytestmark = pytest.mark.oracle


def _theirs_labels(batch_dice: bool, ignore_label: int | None):
    return DC_and_CE_loss({"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=ignore_label, dice_class=MemoryEfficientSoftDiceLoss)


def _value_and_grad(loss, logits, target):
    x = logits.clone().requires_grad_(True)
    value = loss(x, target)
    value.backward()
    return value.detach(), x.grad


@pytest.mark.parametrize("batch_dice", [True, False])
@pytest.mark.parametrize("ignore_label", [None, 3])
@pytest.mark.parametrize("shape", [(2, 3, 6, 7, 5), (4, 3, 9, 8)])
def test_dice_ce_matches_nnunet(batch_dice, ignore_label, shape):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=g)
    target = torch.randint(0, 4 if ignore_label else 3, (shape[0], 1, *shape[2:]), generator=g).float()
    ours = _value_and_grad(DiceCELoss(batch_dice, ignore_label), logits, target)
    theirs = _value_and_grad(_theirs_labels(batch_dice, ignore_label), logits, target)
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])


def test_ignore_only_batch_has_no_ce():
    logits, target = torch.randn(1, 3, 4, 4), torch.full((1, 1, 4, 4), 3.0)
    ours = DiceCELoss(True, ignore_label=3)(logits, target)
    assert torch.isclose(ours, _theirs_labels(True, 3)(logits, target))


@pytest.mark.parametrize("batch_dice", [True, False])
@pytest.mark.parametrize("use_ignore", [False, True])
def test_dice_bce_matches_nnunet(batch_dice, use_ignore):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 5, 6, 7, generator=g)
    target = torch.rand(2, 3 if use_ignore else 2, 5, 6, 7, generator=g) > 0.5
    theirs_loss = DC_and_BCE_loss({}, {"batch_dice": batch_dice, "do_bg": True, "smooth": 1e-5, "ddp": False},
                                  use_ignore_label=use_ignore, dice_class=MemoryEfficientSoftDiceLoss)
    ours = _value_and_grad(DiceBCELoss(batch_dice, use_ignore), logits, target)
    theirs = _value_and_grad(theirs_loss, logits, target)
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])


def test_deep_supervision_matches_nnunet():
    strides = [[1, 1, 1], [2, 2, 2], [2, 2, 1], [2, 2, 2]]
    scales = deep_supervision_scales(strides)
    assert scales == [[1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.5]]
    weights = deep_supervision_weights(len(scales))
    np.testing.assert_allclose(weights, [4 / 6, 2 / 6, 0])
    assert deep_supervision_weights(3, ddp_without_compile=True)[-1] > 0
    g = torch.Generator().manual_seed(2)
    outputs = [torch.randn(2, 3, 8 // 2**i, 8 // 2**i, generator=g) for i in range(3)]
    targets = [torch.randint(0, 3, (2, 1, 8 // 2**i, 8 // 2**i), generator=g).float() for i in range(3)]
    ours = build_loss(False, True, None, 3)(outputs, targets)
    theirs = DeepSupervisionWrapper(_theirs_labels(True, None), weights)(outputs, targets)
    torch.testing.assert_close(ours, theirs)


def test_poly_lr_matches_nnunet_scheduler():
    parameters = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = build_optimizer(parameters)
    assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.99
    scheduler = PolyLRScheduler(optimizer, 1e-2, 1000)
    for epoch in range(0, 1000, 37):
        scheduler.step(epoch)
        assert poly_lr(1e-2, epoch, 1000) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)


def test_trainer_names_map_to_settings():
    assert settings_for_trainer("nnUNetTrainer").num_epochs == 1000
    assert settings_for_trainer("nnUNetTrainer_100epochs").num_epochs == 100
    assert settings_for_trainer("nnUNetTrainer_1epoch").num_epochs == 1
    no_mirror = settings_for_trainer("nnUNetTrainer_250epochs_NoMirroring")
    assert no_mirror.num_epochs == 250 and mirror_axes_for(no_mirror, 3) is None
    assert mirror_axes_for(settings_for_trainer("nnUNetTrainerNoMirroring"), 2) is None
    only01 = settings_for_trainer("nnUNetTrainer_onlyMirror01")
    assert mirror_axes_for(only01, 3) == (0, 1) and mirror_axes_for(only01, 2) == (0,)
    assert mirror_axes_for(settings_for_trainer("nnUNetTrainer"), 2) == (0, 1)
    assert settings_for_trainer("nnUNetTrainerNoDeepSupervision").deep_supervision is False
    with pytest.raises(AutoSegError, match="Unknown trainer 'MyTrainer'.*--epochs"):
        settings_for_trainer("MyTrainer")
