"""Export back to the input geometry (channel-wise reduction == full resampling + argmax) and the
traced CPU graph (same outputs as eager)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_model_folder import PLANS

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.inference.cpu_graph import TracedNetworks
from autoseg.inference.export import export_logits
from autoseg.network import build_network
from autoseg.plans.model import ArchitecturePlan, Plans

LABELS = DatasetJson.from_dict({"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1, "b": 2},
                                "numTraining": 1, "file_ending": ".nii.gz"})
REGIONS = DatasetJson.from_dict(
    {
        "channel_names": {"0": "CT"},
        "numTraining": 1,
        "file_ending": ".nii.gz",
        "labels": {"background": 0, "whole": [1, 2], "core": 2},
        "regions_class_order": [1, 2],
    }
)


def _plans(spacing, transpose=(0, 1, 2)) -> Plans:
    raw = copy.deepcopy(PLANS)
    raw["transpose_forward"] = list(transpose)
    raw["transpose_backward"] = [int(i) for i in np.argsort(transpose)]
    cfg = raw["configurations"]["3d_fullres"]
    cfg["spacing"] = list(spacing)
    cfg["resampling_fn_probabilities_kwargs"] = {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}
    return Plans.from_dict(raw)


@pytest.mark.parametrize("dataset_json", [LABELS, REGIONS], ids=["labels", "regions"])
@pytest.mark.parametrize(
    "spacing", [(1.0, 1.0, 1.0), (2.0, 0.7, 0.7), (5.0, 1.0, 1.0)], ids=["iso", "aniso", "separate_z"]
)
def test_channelwise_export_equals_full_probabilities_path(dataset_json, spacing):
    plans = _plans(spacing, transpose=(2, 0, 1))
    configuration = plans.configuration("3d_fullres")
    rng = np.random.default_rng(0)
    channels = 3 if dataset_json is LABELS else 2
    logits = torch.from_numpy(rng.normal(0, 2, (channels, 9, 13, 11)).astype(np.float16))
    properties = {"spacing": [1.5, 3.0, 0.9], "shape_before_cropping": [24, 20, 30],
                  "bbox_used_for_cropping": [[2, 20], [1, 19], [3, 27]],
                  "shape_after_cropping_and_before_resampling": [18, 18, 24]}
    fast, none = export_logits(logits, plans, configuration, dataset_json, properties)
    full, probabilities = export_logits(
        logits, plans, configuration, dataset_json, properties, return_probabilities=True
    )
    assert none is None and fast.dtype == np.uint8
    np.testing.assert_array_equal(fast, full)
    transposed_back = tuple(properties["shape_before_cropping"][i] for i in plans.transpose_backward)
    assert fast.shape == transposed_back and probabilities.shape == (channels, *transposed_back)
    assert set(np.unique(fast)) <= {0, 1, 2} and len(np.unique(fast)) > 1
    outside = np.ones(properties["shape_before_cropping"], bool)
    outside[2:20, 1:19, 3:27] = False
    assert (fast.transpose(plans.transpose_forward)[outside] == 0).all()  # background outside the crop
    if dataset_json is LABELS:
        np.testing.assert_allclose(probabilities.sum(0), 1, atol=1e-5)


def test_traced_graph_matches_eager_and_falls_back():
    architecture = ArchitecturePlan.from_dict({
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {"n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": "torch.nn.modules.conv.Conv3d",
                        "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                        "n_conv_per_stage": [2, 2, 2], "n_conv_per_stage_decoder": [2, 2], "conv_bias": True,
                        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                        "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    })
    network = build_network(architecture, 1, 3).eval()
    graphs = TracedNetworks(network, enabled=True, eager_calls_before_tracing=1)
    forward = graphs.forward_for(0)
    x = torch.randn(1, 1, 8, 12, 8)
    with torch.inference_mode():
        eager = forward(x)
        traced = forward(torch.flip(x, (2,)))
        assert graphs.traced, "the second call should run the traced graph"
        torch.testing.assert_close(traced, network(torch.flip(x, (2,))), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(eager, network(x))
    broken = TracedNetworks(
        lambda t: t.nonzero(), enabled=True, eager_calls_before_tracing=0
    )  # not traceable as a module
    assert broken.forward_for(0)(torch.ones(1, 1, 2, 2, 2)).shape[0] == 8
    assert not broken.enabled and not broken.traced


def test_onednn_convolutions_and_parallel_copies_keep_results():
    from autoseg.inference.cpu_graph import use_onednn_convolutions
    from autoseg.inference.parallel_copies import ParallelCopies
    from autoseg.inference.sliding_window import predict_with_mirroring

    architecture = ArchitecturePlan.from_dict(
        {
            "network_class_name": "PlainConvUNet",
            "arch_kwargs": {
                "n_stages": 3,
                "features_per_stage": [4, 8, 16],
                "conv_op": "torch.nn.modules.conv.Conv2d",
                "kernel_sizes": [[3, 3]] * 3,
                "strides": [[1, 1], [2, 2], [2, 2]],
                "n_conv_per_stage": [2, 2, 2],
                "n_conv_per_stage_decoder": [2, 2],
                "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                "dropout_op": None,
                "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True},
            },
        }
    )
    network = build_network(architecture, 2, 3).eval()
    x = torch.randn(1, 2, 24, 20)
    with torch.inference_mode():
        reference = predict_with_mirroring(network, x, (0, 1))
        use_onednn_convolutions(network)
        assert network.state_dict().keys() == build_network(architecture, 2, 3).state_dict().keys()
        torch.testing.assert_close(predict_with_mirroring(network, x, (0, 1)), reference, atol=1e-5, rtol=1e-5)
        pool = ParallelCopies(workers=2, threads_per_worker=1)
        try:
            parallel = predict_with_mirroring(network, x, (0, 1), map_copies=pool.mapper(network))
        finally:
            pool.close()
        torch.testing.assert_close(parallel, predict_with_mirroring(network, x, (0, 1)), atol=0, rtol=0)


def test_peak_memory_estimate_grows_with_probabilities_and_folds():
    from types import SimpleNamespace

    from autoseg.inference.predictor import Predictor

    fake = SimpleNamespace(model=SimpleNamespace(num_output_channels=4, folds=[0]))
    properties = {"shape_after_cropping_and_before_resampling": [100, 100, 100]}
    one_fold = Predictor.estimated_peak_bytes(fake, (100, 100, 100), properties, False)
    assert one_fold == 2 * 4 * 10**6 + 4 * 10**6 * 3
    with_probabilities = Predictor.estimated_peak_bytes(fake, (100, 100, 100), properties, True)
    fake.model.folds = [0, 1]
    assert with_probabilities > one_fold
    assert Predictor.estimated_peak_bytes(fake, (100, 100, 100), properties, False) > one_fold
