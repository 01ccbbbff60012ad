"""The trainer's small pure parts: fold selection, pseudo-Dice counts, precision choice, DDP batch split,
pretrained-weight transfer and the progress plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from autoseg.errors import AutoSegError, DatasetError
from autoseg.training.distributed import Ranks, split_batch
from autoseg.training.fold_split import fold_cases
from autoseg.training.patch_metrics import patch_confusion_counts
from autoseg.training.precision import choose_precision
from autoseg.training.pretrained import load_pretrained_weights
from autoseg.training.progress_plot import plot_progress
from autoseg.training.training_log import TrainingLog

IDS = [f"case_{i:03d}" for i in range(12)]


def test_fold_cases_creates_nnunet_splits_and_reuses_them(tmp_path):
    train, val = fold_cases(tmp_path, IDS, 0)
    splits = json.loads((tmp_path / "splits_final.json").read_text())
    assert len(splits) == 5 and sorted(val) == sorted(splits[0]["val"]) and not set(train) & set(val)
    assert sorted(train + val) == IDS
    # a user's own splits file is used as it is
    (tmp_path / "splits_final.json").write_text(json.dumps([{"train": IDS[:10], "val": IDS[10:]}]))
    assert fold_cases(tmp_path, IDS, 0) == (IDS[:10], IDS[10:])


def test_fold_all_and_folds_beyond_the_splits(tmp_path):
    assert fold_cases(tmp_path, IDS, "all") == (IDS, IDS)
    (tmp_path / "splits_final.json").write_text(json.dumps([{"train": IDS[:10], "val": IDS[10:]}]))
    train, val = fold_cases(tmp_path, IDS, 3)  # random 80:20, seeded with 12345 + fold (nnU-Net's rule)
    rng = np.random.RandomState(12345 + 3)
    expected = sorted(IDS[i] for i in rng.choice(12, 9, replace=False))
    assert sorted(train) == expected and len(val) == 3 and sorted(train + val) == IDS
    assert fold_cases(tmp_path, IDS, 3) == (train, val)


def test_splits_naming_missing_cases_are_an_error(tmp_path):
    (tmp_path / "splits_final.json").write_text(json.dumps([{"train": IDS[:10], "val": ["ghost"]}]))
    with pytest.raises(DatasetError, match="ghost"):
        fold_cases(tmp_path, IDS, 0)


def test_pseudo_dice_counts_for_labels_with_ignore():
    target = torch.tensor([0, 1, 1, 2, 2, 3]).view(1, 1, 6)  # 3 = ignore
    predicted = torch.tensor([0, 1, 2, 2, 0, 1])
    logits = torch.nn.functional.one_hot(predicted, 3).T.float().unsqueeze(0)
    tp, fp, fn = patch_confusion_counts(logits, target, has_regions=False, ignore_label=3)
    assert tp.tolist() == [1, 1] and fp.tolist() == [0, 1] and fn.tolist() == [1, 1]


def test_pseudo_dice_counts_for_regions_with_ignore_channel():
    regions = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 1]]).view(1, 2, 4)
    ignore = torch.tensor([0, 0, 0, 1]).view(1, 1, 4)
    target = torch.cat([regions, ignore], 1)
    logits = torch.tensor([[5.0, -5, 5, -5], [-5, 5, -5, 5]]).view(1, 2, 4)
    tp, fp, fn = patch_confusion_counts(logits, target, has_regions=True, ignore_label=4)
    assert tp.tolist() == [1, 1] and fp.tolist() == [1, 0] and fn.tolist() == [1, 0]


def test_precision_choice():
    assert choose_precision(torch.device("cpu"), "fp32").autocast_dtype is None
    assert choose_precision(torch.device("cpu"), "bf16").autocast_dtype == torch.bfloat16
    assert choose_precision(torch.device("cuda"), "auto").needs_grad_scaler
    with pytest.raises(AutoSegError, match="needs a CUDA device"):
        choose_precision(torch.device("cpu"), "fp16")
    with pytest.raises(AutoSegError, match="Unknown precision"):
        choose_precision(torch.device("cpu"), "fp8")


@pytest.mark.parametrize("batch_size, world_size", [(2, 2), (9, 2), (12, 4), (5, 3)])
def test_ddp_batch_split_keeps_the_global_oversampling(batch_size, world_size):
    parts = [split_batch(batch_size, 0.33, Ranks(r, world_size)) for r in range(world_size)]
    assert sum(size for size, _ in parts) == batch_size
    forced = sum(round(size * percent) for size, percent in parts)
    assert forced == round(batch_size * 0.33)
    # the forced samples are the global batch's last ones: only the last ranks have any
    flags = [round(size * percent) for size, percent in parts]
    assert flags == sorted(flags)


def test_ddp_batch_too_small_for_the_ranks():
    with pytest.raises(AutoSegError, match="cannot be split"):
        split_batch(2, 0.33, Ranks(0, 3))


def _tiny_network(out_channels: int) -> torch.nn.Module:
    from autoseg.network.build import build_network
    from autoseg.plans.model import ArchitecturePlan

    kwargs = {
        "n_stages": 2,
        "features_per_stage": [4, 8],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * 2,
        "strides": [[1, 1, 1], [2, 2, 2]],
        "n_conv_per_stage": [1, 1],
        "n_conv_per_stage_decoder": [1],
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-5, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    plan = ArchitecturePlan("dynamic_network_architectures.architectures.unet.PlainConvUNet", kwargs)
    return build_network(plan, 1, out_channels, deep_supervision=True)


def test_pretrained_weights_copy_everything_but_the_heads(tmp_path):
    source, target = _tiny_network(3), _tiny_network(5)
    torch.save({"network_weights": source.state_dict()}, tmp_path / "pre.pth")
    load_pretrained_weights(target, tmp_path / "pre.pth")
    for key, value in target.state_dict().items():
        if ".seg_layers." not in key:
            assert torch.equal(value, source.state_dict()[key]), key
    other = torch.nn.Conv3d(1, 1, 1)
    torch.save({"network_weights": other.state_dict()}, tmp_path / "other.pth")
    with pytest.raises(AutoSegError, match="do not fit"):
        load_pretrained_weights(target, tmp_path / "other.pth")
    with pytest.raises(AutoSegError, match="does not exist"):
        load_pretrained_weights(target, tmp_path / "missing.pth")


def test_progress_plot_is_a_png(tmp_path):
    log = TrainingLog()
    for epoch in range(3):
        log.epoch_start_timestamps.append(float(epoch))
        log.train_losses.append(-0.1 * epoch)
        log.val_losses.append(-0.05 * epoch)
        log.lrs.append(0.01)
        log.log_validation([0.1 * epoch, 0.2])
        log.epoch_end_timestamps.append(epoch + 0.5)
    plot_progress(log, tmp_path / "progress.png")
    assert (tmp_path / "progress.png").read_bytes()[:4] == b"\x89PNG"
