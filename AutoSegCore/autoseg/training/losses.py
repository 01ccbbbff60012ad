"""nnU-Net's training losses: soft Dice (+ cross-entropy for labels, + BCE for regions), the ignore label,
and deep supervision with halving weights (the lowest resolution weighted 0).

``build_loss`` returns exactly the loss nnU-Net's default trainer builds for a plan and dataset.json.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

#: Gathers a per-rank tensor from every DDP rank (stacked on a new first axis), keeping gradients.
Gather = Callable[[torch.Tensor], torch.Tensor]


class SoftDiceLoss(nn.Module):
    """Negative mean soft Dice over classes (nnU-Net's memory-efficient variant).

    ``x`` are logits (b, c, ...); ``y`` is a label map (b, 1, ...) or a one-hot/region target shaped like ``x``.
    With ``batch_dice`` the sums run over the whole batch (and all DDP ranks via ``gather``) before the ratio.
    """

    def __init__(self, nonlin: Callable[[torch.Tensor], torch.Tensor] | None, batch_dice: bool, do_bg: bool,
                 smooth: float = 1e-5, gather: Gather | None = None) -> None:
        super().__init__()
        self.nonlin, self.batch_dice, self.do_bg, self.smooth, self.gather = nonlin, batch_dice, do_bg, smooth, gather

    def forward(self, x: torch.Tensor, y: torch.Tensor, loss_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.nonlin is not None:
            x = self.nonlin(x)
        axes = tuple(range(2, x.ndim))
        with torch.no_grad():
            if y.ndim != x.ndim:
                y = y.view(y.shape[0], 1, *y.shape[1:])
            if y.shape == x.shape:
                target = y.to(torch.float32)
            else:
                target = torch.zeros(x.shape, device=x.device, dtype=torch.float32)
                target.scatter_(1, y.long(), 1)
            if not self.do_bg:
                target = target[:, 1:]
            sum_gt = (target if loss_mask is None else target * loss_mask).sum(axes, dtype=torch.float32)
        if not self.do_bg:
            x = x[:, 1:]
        if loss_mask is None:
            intersect = (x * target).sum(axes, dtype=torch.float32)
            sum_pred = x.sum(axes, dtype=torch.float32)
        else:
            intersect = (x * target * loss_mask).sum(axes, dtype=torch.float32)
            sum_pred = (x * loss_mask).sum(axes, dtype=torch.float32)
        if self.batch_dice:
            if self.gather is not None:
                intersect, sum_pred, sum_gt = (
                    self.gather(t).sum(0, dtype=torch.float32) for t in (intersect, sum_pred, sum_gt)
                )
            intersect, sum_pred, sum_gt = (t.sum(0, dtype=torch.float32) for t in (intersect, sum_pred, sum_gt))
        dice = (2 * intersect + self.smooth) / (sum_gt + sum_pred + float(self.smooth)).clamp_min(1e-8)
        return -dice.mean()


class DiceCELoss(nn.Module):
    """Label training: soft Dice without background (after softmax) + cross-entropy, weights 1 and 1.

    Voxels with ``ignore_label`` are masked out of both terms; a batch of ignore-only voxels gets no CE.
    """

    def __init__(self, batch_dice: bool, ignore_label: int | None = None, weight_ce: float = 1.0,
                 weight_dice: float = 1.0, gather: Gather | None = None) -> None:
        super().__init__()
        self.ignore_label, self.weight_ce, self.weight_dice = ignore_label, weight_ce, weight_dice
        self.dice = SoftDiceLoss(lambda t: torch.softmax(t, 1), batch_dice, do_bg=False, gather=gather)
        self.ce = nn.CrossEntropyLoss(ignore_index=ignore_label if ignore_label is not None else -100)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor | float:
        """``output`` logits (b, c, ...), ``target`` label map (b, 1, ...); 0.0 when every term is switched off."""
        if self.ignore_label is not None:
            mask = target != self.ignore_label
            dice_target = torch.where(mask, target, 0)
            has_labelled = bool(mask.sum() > 0)
        else:
            mask, dice_target, has_labelled = None, target, True
        dice = self.dice(output, dice_target, loss_mask=mask) if self.weight_dice else 0
        ce = self.ce(output, target[:, 0].long()) if self.weight_ce and has_labelled else 0
        return self.weight_ce * ce + self.weight_dice * dice


class DiceBCELoss(nn.Module):
    """Region training: soft Dice with background (after sigmoid) + binary cross-entropy.

    With ``use_ignore_label`` the last target channel marks ignored voxels (nnU-Net's convention).
    """

    def __init__(self, batch_dice: bool, use_ignore_label: bool = False, weight_ce: float = 1.0,
                 weight_dice: float = 1.0, gather: Gather | None = None) -> None:
        super().__init__()
        self.use_ignore_label, self.weight_ce, self.weight_dice = use_ignore_label, weight_ce, weight_dice
        self.dice = SoftDiceLoss(torch.sigmoid, batch_dice, do_bg=True, gather=gather)
        self.bce = nn.BCEWithLogitsLoss(reduction="none" if use_ignore_label else "mean")

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``output`` logits (b, r, ...), ``target`` one-hot regions (b, r[+1], ...)."""
        if self.use_ignore_label:
            mask = ~target[:, -1:] if target.dtype == torch.bool else (1 - target[:, -1:]).bool()
            regions = target[:, :-1]
        else:
            mask, regions = None, target
        dice = self.dice(output, regions, loss_mask=mask)
        regions = regions.float()
        if mask is None:
            bce = self.bce(output, regions)
        else:
            bce = (self.bce(output, regions) * mask).sum() / torch.clip(mask.sum(), min=1e-8)
        return self.weight_ce * bce + self.weight_dice * dice


def deep_supervision_scales(strides: Sequence[Sequence[int]]) -> list[list[float]]:
    """Resolution of every deep-supervision output relative to the patch (1 / cumulative stride), all but the
    lowest-resolution stage."""
    return [list(s) for s in (1 / np.cumprod(np.vstack(strides), axis=0))][:-1]


def deep_supervision_weights(num_outputs: int, ddp_without_compile: bool = False) -> np.ndarray:
    """Halving weights, highest resolution first, the lowest set to 0 (1e-6 under DDP without
    ``torch.compile``, which otherwise complains about unused parameters), normalised to sum 1."""
    weights = np.array([1 / (2**i) for i in range(num_outputs)])
    weights[-1] = 1e-6 if ddp_without_compile else 0
    return weights / weights.sum()


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of a loss over the outputs of every decoder resolution (zero weights are skipped)."""

    def __init__(self, loss: nn.Module, weights: Sequence[float] | np.ndarray) -> None:
        super().__init__()
        if not any(w != 0 for w in weights):
            raise ValueError("at least one deep-supervision weight must be non-zero")
        self.loss, self.weights = loss, tuple(float(w) for w in weights)

    def forward(self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
        return sum(w * self.loss(o, t) for w, o, t in zip(self.weights, outputs, targets) if w != 0)


def build_loss(has_regions: bool, batch_dice: bool, ignore_label: int | None, deep_supervision_outputs: int | None,
               gather: Gather | None = None, ddp_without_compile: bool = False) -> nn.Module:
    """The loss of nnU-Net's default trainer. ``deep_supervision_outputs``: number of decoder outputs, or None."""
    if has_regions:
        loss: nn.Module = DiceBCELoss(batch_dice, use_ignore_label=ignore_label is not None, gather=gather)
    else:
        loss = DiceCELoss(batch_dice, ignore_label, gather=gather)
    if deep_supervision_outputs:
        loss = DeepSupervisionLoss(loss, deep_supervision_weights(deep_supervision_outputs, ddp_without_compile))
    return loss
