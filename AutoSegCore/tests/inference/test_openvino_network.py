"""The torch-free OpenVINO U-Nets compute what the torch networks compute, from the same plans and weights.

Every case builds AutoSeg's torch network with random weights (norm parameters and running statistics
included), converts its state dict to numpy, builds the OpenVINO model from the plan and compares logits
(compiled with f32 inference precision: this CPU would default to bf16). Also: the in-graph mirroring
against ``predict_with_mirroring``, weight and plan errors, the layer-name allow-list, nnU-Net's own
networks (dynamic_network_architectures) and a run with torch unimportable.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import pytest
import torch
from torch import nn

from autoseg.errors import PlanError
from autoseg.inference.openvino_layers import LAYER_ARGUMENTS
from autoseg.inference.openvino_network import build_openvino_model
from autoseg.inference.sliding_window import predict_with_mirroring
from autoseg.network import build_network
from autoseg.network.build import NETWORK_CLASSES
from autoseg.network.ops import ALLOWED_OPS, resolve_op
from autoseg.plans.architecture_args import NETWORK_CLASS_NAMES, REQUIRED, UNET_ARGUMENTS
from autoseg.plans.layer_names import ALLOWED_LAYERS, full_name, layer_name
from autoseg.plans.model import PLAIN_UNET_CLASS, RESENC_UNET_CLASS, ArchitecturePlan

CORE = ov.Core()
F32 = {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": 1}

#: nnU-Net 2.8.1's 3d_fullres plan for Dataset004_Hippocampus (ExperimentPlanner), as in nnUNetPlans.json.
HIPPOCAMPUS_3D_FULLRES: dict[str, Any] = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {
        "n_stages": 4, "features_per_stage": [32, 64, 128, 256], "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * 4, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
        "n_conv_per_stage": [2, 2, 2, 2], "n_conv_per_stage_decoder": [2, 2, 2], "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    },
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}


pytestmark = pytest.mark.usefixtures("single_torch_thread")  # tiny networks (tests/conftest.py)


def plan(residual: bool, dim: int, n_stages: int = 3, **changes: Any) -> ArchitecturePlan:
    """A small nnU-Net-style plan (InstanceNorm, LeakyReLU, bias: the planners' defaults) with ``changes``."""
    kwargs: dict[str, Any] = {
        "n_stages": n_stages, "features_per_stage": [4 * 2**min(i, 1) for i in range(n_stages)],
        "conv_op": f"torch.nn.modules.conv.Conv{dim}d", "kernel_sizes": [[3] * dim] * n_stages,
        "strides": [[1] * dim] + [[2] * dim] * (n_stages - 1),
        ("n_blocks_per_stage" if residual else "n_conv_per_stage"): [1, 2, 2, 2][:n_stages] if residual else 2,
        "n_conv_per_stage_decoder": [1] * (n_stages - 1), "conv_bias": True,
        "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    kwargs.update(changes)
    return ArchitecturePlan(RESENC_UNET_CLASS if residual else PLAIN_UNET_CLASS, kwargs)


def randomize(network: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere (not the 1/0 of fresh norms, zero biases or zeroed residual norms)."""
    generator = torch.Generator().manual_seed(seed)

    def rand(tensor: torch.Tensor | None, low: float, high: float) -> None:
        if tensor is not None:
            tensor.copy_(low + (high - low) * torch.rand(tensor.shape, generator=generator))

    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.modules.conv._ConvNd):  # variance-preserving weights
                fan_in = module.weight.shape[0] if module.transposed else module.weight[0].numel()
                rand(module.weight, -((3 / fan_in) ** 0.5), (3 / fan_in) ** 0.5)
                rand(module.bias, -0.5, 0.5)
            elif isinstance(module, nn.modules.batchnorm._NormBase):  # BatchNorm and InstanceNorm
                rand(module.weight, 0.5, 1.5)
                rand(module.bias, -0.5, 0.5)
                rand(module.running_mean, -0.5, 0.5)
                rand(module.running_var, 0.5, 2.0)
            elif isinstance(module, nn.PReLU):
                rand(module.weight, 0.0, 0.3)
    return network.eval()


def numpy_weights(network: nn.Module) -> dict[str, np.ndarray]:
    return {key: value.numpy() for key, value in network.state_dict().items()}


def run(model: ov.Model, x: np.ndarray) -> np.ndarray:
    return CORE.compile_model(model, "CPU", F32)(x)[0]


def assert_matches(result: np.ndarray, reference: np.ndarray) -> None:
    assert result.shape == reference.shape and result.dtype == np.float32
    tolerance = 1e-4 * max(1.0, float(np.abs(reference).max()))
    assert float(np.abs(result - reference).max()) <= tolerance


def compare(architecture: ArchitecturePlan, channels: int, classes: int, spatial: tuple[int, ...],
            batch: int = 1, input_shape: tuple[int, ...] | None = None) -> None:
    network = randomize(build_network(architecture, channels, classes, initialize=False))
    x = torch.randn(batch, channels, *spatial, generator=torch.Generator().manual_seed(1))
    model = build_openvino_model(
        architecture, channels, classes, numpy_weights(network), input_shape or tuple(x.shape)
    )
    with torch.no_grad():
        reference = network(x).numpy()
    assert_matches(run(model, x.numpy()), reference)


K133, S122 = [1, 3, 3], [1, 2, 2]
CASES = {
    "plain3d_default": (False, 3, {}, 1, 3, (8, 8, 8)),
    "resenc3d_default": (True, 3, {}, 3, 4, (8, 8, 8)),
    "plain2d_batchnorm_nobias_relu": (False, 2, dict(
        norm_op="torch.nn.BatchNorm2d", norm_op_kwargs={"eps": 1e-3, "momentum": 0.01}, conv_bias=False,
        nonlin="ReLU"), 2, 2, (16, 8)),
    "resenc2d_batchnorm_prelu": (True, 2, dict(
        norm_op="torch.nn.modules.batchnorm.BatchNorm2d", nonlin="torch.nn.PReLU", nonlin_kwargs={}), 1, 3, (8, 16)),
    "plain3d_no_norm_elu": (False, 3, dict(norm_op=None, norm_op_kwargs=None, nonlin="ELU",
                                           nonlin_kwargs={"alpha": 0.5}), 1, 2, (8, 8, 4)),
    "resenc3d_no_norm_no_nonlin": (True, 3, dict(norm_op=None, nonlin=None, nonlin_kwargs=None), 2, 2, (4, 8, 8)),
    "plain3d_nonlin_first_batchnorm_gelu": (False, 3, dict(
        norm_op="BatchNorm3d", norm_op_kwargs={"affine": False}, nonlin="torch.nn.GELU", nonlin_kwargs={},
        nonlin_first=True), 1, 3, (8, 4, 8)),
    "plain2d_nonlin_first_gelu_tanh": (False, 2, dict(
        nonlin="GELU", nonlin_kwargs={"approximate": "tanh"}, nonlin_first=True, n_conv_per_stage=[1, 3, 2],
        n_conv_per_stage_decoder=[3, 1]), 3, 2, (8, 8)),
    "plain3d_dropout_silu": (False, 3, dict(
        dropout_op="torch.nn.modules.dropout.Dropout3d", dropout_op_kwargs={"p": 0.3, "inplace": True},
        nonlin="SiLU"), 1, 2, (8, 8, 8)),
    "resenc3d_dropout_tanh_aniso": (True, 3, dict(
        dropout_op="Dropout", dropout_op_kwargs={"p": 0.5}, nonlin="Tanh", nonlin_kwargs=None,
        kernel_sizes=[K133, K133, [3, 3, 3]], strides=[[1, 1, 1], S122, [2, 2, 2]]), 2, 3, (4, 16, 8)),
    "plain3d_aniso_sigmoid_plain_instancenorm": (False, 3, dict(
        nonlin="Sigmoid", nonlin_kwargs={}, norm_op_kwargs={"eps": 1e-5},
        kernel_sizes=[K133, K133, [3, 3, 3]], strides=[[1, 1, 1], S122, [2, 2, 2]]), 3, 2, (4, 8, 16)),
    "plain2d_prelu_per_channel": (False, 2, dict(
        features_per_stage=[4, 4, 4], nonlin="PReLU", nonlin_kwargs={"num_parameters": 4}), 1, 2, (8, 8)),
    "resenc2d_instancenorm_running_stats_4_stages": (True, 2, dict(
        norm_op_kwargs={"eps": 1e-5, "affine": True, "track_running_stats": True},
        nonlin_kwargs={"negative_slope": 0.2}), 1, 5, (16, 16)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch(case: str) -> None:
    residual, dim, changes, channels, classes, spatial = CASES[case]
    n_stages = 4 if "4_stages" in case else 3
    compare(plan(residual, dim, n_stages, **changes), channels, classes, spatial)


def test_dynamic_batch() -> None:
    compare(plan(True, 3), 2, 3, (8, 8, 8), batch=2, input_shape=(-1, 2, 8, 8, 8))


def test_hippocampus_plan_from_json() -> None:
    architecture = ArchitecturePlan.from_dict(json.loads(json.dumps(HIPPOCAMPUS_3D_FULLRES)))
    compare(architecture, 1, 3, (16, 16, 8))


# ------------------------------------------------------------------ mirroring in the graph
@pytest.mark.parametrize(
    ("residual", "dim", "axes", "spatial"),
    [
        (False, 3, (0, 1, 2), (8, 16, 8)), (True, 3, (1, 2), (8, 8, 16)), (False, 2, (0, 1), (16, 8)),
        (True, 2, (1,), (8, 8)),
    ],
)
def test_mirroring_matches_predict_with_mirroring(residual: bool, dim: int, axes: tuple[int, ...], spatial) -> None:
    architecture = plan(residual, dim)
    network = randomize(build_network(architecture, 2, 3, initialize=False))
    x = torch.randn(1, 2, *spatial, generator=torch.Generator().manual_seed(2))
    model = build_openvino_model(architecture, 2, 3, numpy_weights(network), tuple(x.shape), mirror_axes=axes)
    with torch.no_grad():
        reference = predict_with_mirroring(network, x, axes).numpy()
        unmirrored = network(x).numpy()
    result = run(model, x.numpy())
    assert_matches(result, reference)
    assert np.abs(result - unmirrored).max() > 1e-3  # the flips do change the result


def test_mirror_axes_must_fit() -> None:
    architecture = plan(False, 2)
    weights = numpy_weights(build_network(architecture, 1, 2, initialize=False))
    with pytest.raises(ValueError, match="do not fit a 2D input"):
        build_openvino_model(architecture, 1, 2, weights, (1, 1, 8, 8), mirror_axes=(0, 2))


# ------------------------------------------------------------------ weights
@pytest.fixture(scope="module")
def small() -> tuple[ArchitecturePlan, dict[str, np.ndarray]]:
    architecture = plan(True, 2)
    return architecture, numpy_weights(build_network(architecture, 1, 2, initialize=False))


def first_line_of_error(architecture: ArchitecturePlan, weights: dict[str, np.ndarray]) -> str:
    with pytest.raises(ValueError) as info:
        build_openvino_model(architecture, 1, 2, weights, (1, 1, 8, 8))
    return str(info.value).splitlines()[0]


def test_missing_weight(small) -> None:
    architecture, weights = small
    key = "encoder.stages.1.blocks.0.skip.1.norm.bias"
    missing = {k: v for k, v in weights.items() if k not in (key, "decoder.seg_layers.1.weight")}
    line = first_line_of_error(architecture, missing)
    assert "missing key(s) (2)" in line and key in line and "decoder.seg_layers.1.weight" in line


def test_unexpected_weight(small) -> None:
    architecture, weights = small
    line = first_line_of_error(architecture, {**weights, "encoder.stages.0.extra.weight": np.zeros(3)})
    assert "unexpected key(s) (1): encoder.stages.0.extra.weight" in line and "missing" not in line


def test_wrong_shape(small) -> None:
    architecture, weights = small
    key = "decoder.transpconvs.0.weight"
    line = first_line_of_error(architecture, {**weights, key: np.zeros((1, 2, 3, 4), np.float32)})
    assert f"size mismatch (1): {key}: checkpoint (1, 2, 3, 4), model (8, 8, 2, 2)" in line


def test_aliases_and_deep_supervision_heads_are_optional(small) -> None:
    architecture, weights = small
    canonical = {k: v for k, v in weights.items()
                 if ".all_modules." not in k and not k.startswith("decoder.encoder.") and "seg_layers.0" not in k}
    assert len(canonical) < len(weights)
    build_openvino_model(architecture, 1, 2, canonical, (1, 1, 8, 8))
    with pytest.raises(ValueError, match="decoder.encoder.stem.convs.0.all_modules.0.weight: checkpoint"):
        bad_alias = {**weights, "decoder.encoder.stem.convs.0.all_modules.0.weight": np.zeros((4, 1, 3, 1))}
        build_openvino_model(architecture, 1, 2, bad_alias, (1, 1, 8, 8))


def test_input_shape_must_fit_the_strides(small) -> None:
    architecture, weights = small
    with pytest.raises(ValueError, match="divisible by the product of its strides"):
        build_openvino_model(architecture, 1, 2, weights, (1, 1, 8, 6))
    with pytest.raises(ValueError, match=r"input_shape must be \(batch, 1, 2 spatial sizes\)"):
        build_openvino_model(architecture, 1, 2, weights, (1, 2, 8, 8))


# ------------------------------------------------------------------ plan checks: the same as build_network's
BAD_PLANS = {
    "groupnorm": dict(norm_op="torch.nn.GroupNorm"),
    "conv4d": dict(conv_op="torch.nn.modules.conv.Conv4d"),
    "conv_none": dict(conv_op=None),
    "imported_nonlin": dict(nonlin="os.system"),
    "unknown_key": dict(block="BottleneckD"),
    "kernel_lengths": dict(kernel_sizes=[[3, 3]] * 2),
    "stride_axes": dict(strides=[[1, 1, 1]] * 3),
    "one_stage": dict(n_stages=1, features_per_stage=[4], kernel_sizes=[[3, 3]], strides=[[1, 1]],
                      n_conv_per_stage_decoder=[]),
    "zero_convs": dict(n_conv_per_stage=[2, 0, 2]),
}


@pytest.mark.parametrize("name", list(BAD_PLANS))
def test_plan_errors_are_build_networks(name: str) -> None:
    architecture = plan(False, 2, **BAD_PLANS[name])
    with pytest.raises(PlanError) as torch_error:
        build_network(architecture, 1, 2)
    with pytest.raises(PlanError) as openvino_error:
        build_openvino_model(architecture, 1, 2, {}, (1, 1, 8, 8))
    assert str(openvino_error.value) == str(torch_error.value)


def without(architecture: ArchitecturePlan, key: str) -> ArchitecturePlan:
    return replace(architecture, arch_kwargs={k: v for k, v in architecture.arch_kwargs.items() if k != key})


@pytest.mark.parametrize(
    ("architecture", "message"),
    [
        (replace(plan(False, 2), network_class_name="my.FancyUNet"), "Unsupported network_class_name 'my.FancyUNet'"),
        (replace(plan(True, 2), kw_requires_import=("conv_op", "block")), "_kw_requires_import lists block"),
        (without(plan(True, 2), "n_blocks_per_stage"), "missing n_blocks_per_stage"),
        (plan(False, 2, nonlin_kwargs={"slope": 0.1}), "LeakyReLU got unexpected keyword argument(s) 'slope'"),
        (plan(False, 2, nonlin="GELU", nonlin_kwargs={"approximate": "fast"}), "approximate must be"),
        (plan(False, 2, dropout_op="Dropout", dropout_op_kwargs={"p": 2}), "between 0 and 1"),
        (plan(False, 2, nonlin="PReLU", nonlin_kwargs={"num_parameters": 3}), "num_parameters=3"),
        (plan(False, 2, norm_op="BatchNorm2d", norm_op_kwargs={"track_running_stats": False}), "batch statistics"),
    ],
    ids=["class", "kw_requires_import", "missing_key", "nonlin_kwargs", "gelu", "dropout_p", "prelu", "batch_stats"],
)
def test_plan_errors(architecture: ArchitecturePlan, message: str) -> None:
    with pytest.raises(PlanError) as info:  # before the weights are checked
        build_openvino_model(architecture, 1, 2, {}, (1, 1, 8, 8))
    assert message in str(info.value)


# ------------------------------------------------------------------ one allow-list, torch-free
def test_layer_names_are_torchs_classes() -> None:
    assert {key: tuple(cls.__name__ for cls in classes) for key, classes in ALLOWED_OPS.items()} == {
        key: tuple(names) for key, names in ALLOWED_LAYERS.items()
    }
    for key, classes in ALLOWED_OPS.items():
        for cls in classes:
            assert full_name(key, cls.__name__) == f"{cls.__module__}.{cls.__name__}"
            for spelling in (full_name(key, cls.__name__), f"torch.nn.{cls.__name__}", cls.__name__, cls):
                assert layer_name(key, spelling) == cls.__name__
                assert resolve_op(key, spelling) is cls


def test_layer_name_rejects_lookalikes() -> None:
    fake = type("Conv3d", (), {"__module__": "mypackage"})
    for value in (fake, "torch.nn.modules.activation.Conv3d", "torch.Conv3d", nn.ConvTranspose3d, 3):
        with pytest.raises(PlanError, match="is not a supported layer class"):
            layer_name("conv_op", value)
    assert layer_name("nonlin", None) is None
    with pytest.raises(PlanError, match="must name a layer class, got None"):
        layer_name("conv_op", None)


def test_argument_tables_match_torch() -> None:
    assert NETWORK_CLASS_NAMES.keys() == NETWORK_CLASSES.keys()
    for name, cls in NETWORK_CLASSES.items():
        assert NETWORK_CLASS_NAMES[name] == cls.__name__
        parameters = {
            p.name: (REQUIRED if p.default is inspect.Parameter.empty else p.default)
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name not in ("self", "input_channels", "num_classes", "deep_supervision")
        }
        assert UNET_ARGUMENTS[cls.__name__] == parameters
    for name, arguments in LAYER_ARGUMENTS.items():
        defaults = {p.name: p.default for p in inspect.signature(getattr(nn, name).__init__).parameters.values()}
        assert all(defaults[key] == value for key, value in arguments.items()), name


# ------------------------------------------------------------------ nnU-Net's own networks
def test_dynamic_network_architectures_checkpoints() -> None:
    """nnU-Net's networks (real feature counts) load and compute the same, from its plan's names."""
    unet = pytest.importorskip("dynamic_network_architectures.architectures.unet")
    plain = ArchitecturePlan.from_dict(HIPPOCAMPUS_3D_FULLRES)
    resenc = dict(HIPPOCAMPUS_3D_FULLRES, network_class_name=RESENC_UNET_CLASS)
    resenc["arch_kwargs"] = {k: v for k, v in plain.arch_kwargs.items() if k != "n_conv_per_stage"}
    resenc["arch_kwargs"].update(n_blocks_per_stage=[1, 3, 4, 6], n_conv_per_stage_decoder=[1, 1, 1])
    networks = ((plain, unet.PlainConvUNet), (ArchitecturePlan.from_dict(resenc), unet.ResidualEncoderUNet))
    for architecture, cls in networks:
        kwargs = {k: resolve_op(k, v) if k in ALLOWED_OPS else v for k, v in architecture.arch_kwargs.items()}
        network = randomize(cls(input_channels=1, num_classes=3, deep_supervision=False, **kwargs), seed=3)
        x = torch.randn(1, 1, 16, 16, 8, generator=torch.Generator().manual_seed(4))
        model = build_openvino_model(architecture, 1, 3, numpy_weights(network), tuple(x.shape))
        with torch.no_grad():
            assert_matches(run(model, x.numpy()), network(x).numpy())


# ------------------------------------------------------------------ no torch
def test_builds_and_runs_without_torch(tmp_path: Path) -> None:
    architecture = plan(True, 3, norm_op="BatchNorm3d", nonlin="PReLU", nonlin_kwargs={})
    network = randomize(build_network(architecture, 1, 2, initialize=False))
    x = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(5))
    np.savez(tmp_path / "weights.npz", **numpy_weights(network))
    np.save(tmp_path / "x.npy", x.numpy())
    (tmp_path / "plan.json").write_text(json.dumps(architecture.to_dict()))
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["torch"] = None  # any import of torch fails
        import numpy as np, openvino as ov
        from autoseg.inference.openvino_network import build_openvino_model
        from autoseg.plans.model import ArchitecturePlan
        folder = {str(tmp_path)!r}
        architecture = ArchitecturePlan.from_dict(json.load(open(folder + "/plan.json")))
        weights = dict(np.load(folder + "/weights.npz"))
        model = build_openvino_model(architecture, 1, 2, weights, (1, 1, 8, 8, 8), mirror_axes=(0, 1, 2))
        compiled = ov.Core().compile_model(model, "CPU", {{"INFERENCE_PRECISION_HINT": "f32"}})
        np.save(folder + "/out.npy", compiled(np.load(folder + "/x.npy"))[0])
        assert sys.modules["torch"] is None
        assert not any(name.startswith("torch.") for name in sys.modules), "torch submodules imported"
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    with torch.no_grad():
        reference = predict_with_mirroring(network, x, (0, 1, 2)).numpy()
    assert_matches(np.load(tmp_path / "out.npy"), reference)


@pytest.mark.parametrize("spatial", [(16, 24, 24), (64, 64, 32)], ids=["mvn", "flattened"])
def test_instance_norm_statistics_after_a_convolution(spatial):
    """Both instance-norm paths (N-d MVN below FLAT_NORM_VOXELS, flattened above) match float64 after a convolution
    (the channel-blocked layout where OpenVINO's N-d MVN was least exact)."""
    import openvino as ov
    import openvino.opset16 as ops

    from autoseg.inference import openvino_layers

    rng = np.random.default_rng(5)
    x = (rng.normal(size=(1, 2, *spatial)) * 2 + 3).astype(np.float32)
    weight = rng.normal(size=(16, 2, 3, 3, 3)).astype(np.float32) * 0.3
    bias = rng.normal(size=16).astype(np.float32)
    conv = torch.nn.functional.conv3d(torch.from_numpy(x).double(), torch.from_numpy(weight).double(),
                                      torch.from_numpy(bias).double(), padding=1)
    expected = torch.nn.functional.instance_norm(conv, eps=1e-5).numpy()
    parameter = ops.parameter(x.shape, np.float32)
    features = openvino_layers.add_bias(openvino_layers.convolution(parameter, weight, None, [1, 1, 1]), bias, 3)
    model = ov.Model([openvino_layers.instance_norm(features, 3, 1e-5)], [parameter])
    result = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x)[0]
    assert (np.prod(spatial) >= openvino_layers.FLAT_NORM_VOXELS) == (spatial == (64, 64, 32))
    assert float(np.abs(result - expected).max()) < 1e-3
