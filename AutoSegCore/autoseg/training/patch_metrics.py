"""True/false positives and false negatives of validation patches, for the per-epoch pseudo Dice.

Labels: the argmax of the logits against the label map, background excluded. Regions: sigmoid > 0.5 per
region (nnU-Net's rule), every region counted. Voxels with the ignore label are left out.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def patch_confusion_counts(logits: torch.Tensor, target: torch.Tensor, has_regions: bool,
                           ignore_label: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``logits`` (b, c, ...) at full resolution, ``target`` (b, 1, ...) labels or (b, r[+1], ...) regions.

    Returns (tp, fp, fn) per foreground class or region, summed over the batch, as int64 CPU tensors.
    """
    axes = [0, *range(2, logits.ndim)]
    mask: torch.Tensor | None = None
    if has_regions:
        if ignore_label is not None:
            mask = (1 - target[:, -1:].float()).bool()
            target = target[:, :-1]
        predicted = logits.float().sigmoid() > 0.5
        reference = target.bool()
    else:
        labels = target[:, :1].long()
        if ignore_label is not None:
            mask = labels != ignore_label
            labels = torch.where(mask, labels, 0)
        num_classes = logits.shape[1]
        predicted = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
        predicted.scatter_(1, logits.argmax(1, keepdim=True), True)
        reference = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
        reference.scatter_(1, labels.clamp(0, num_classes - 1), True)
        predicted, reference = predicted[:, 1:], reference[:, 1:]
    if mask is not None:
        predicted = predicted & mask
        reference = reference & mask
    tp = (predicted & reference).sum(axes)
    fp = (predicted & ~reference).sum(axes)
    fn = (~predicted & reference).sum(axes)
    return tp.cpu(), fp.cpu(), fn.cpu()
