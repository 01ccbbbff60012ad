"""build_network without the oracle: plan checks, class and layer names, outputs, init, feature maps."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from network_cases import TOPOLOGIES, Topology, full_architecture, small_architecture
from torch import nn

from autoseg.errors import PlanError
from autoseg.network import PlainConvUNet, ResidualEncoderUNet, build_network, network_class
from autoseg.network.blocks import BasicResidualBlock
from autoseg.network.build import NETWORK_CLASSES
from autoseg.plans.feature_maps import architecture_feature_map_size
from autoseg.plans.model import ArchitecturePlan


def with_kwargs(plan: ArchitecturePlan, **changes: object) -> ArchitecturePlan:
    return replace(plan, arch_kwargs={**plan.arch_kwargs, **changes})


# ------------------------------------------------------------------ class and layer names
@pytest.mark.parametrize("name", list(NETWORK_CLASSES))
def test_network_class_names(name: str) -> None:
    expected = ResidualEncoderUNet if name.endswith("ResidualEncoderUNet") else PlainConvUNet
    assert network_class(name) is expected
    plan = small_architecture("Hippocampus_2d", residual=expected is ResidualEncoderUNet)
    plan = replace(plan, network_class_name=name)
    assert type(build_network(plan, 1, 2)) is expected


def test_unknown_network_class() -> None:
    plan = replace(small_architecture("Hippocampus_2d", False), network_class_name="my.package.FancyUNet")
    with pytest.raises(PlanError, match=r"'my\.package\.FancyUNet'.*PlainConvUNet"):
        build_network(plan, 1, 2)


@pytest.mark.parametrize(
    "spelling", ["torch.nn.modules.activation.LeakyReLU", "torch.nn.LeakyReLU", "LeakyReLU", nn.LeakyReLU]
)
def test_layer_name_spellings(spelling: object) -> None:
    network = build_network(with_kwargs(small_architecture("Hippocampus_2d", False), nonlin=spelling), 1, 2)
    assert isinstance(network.encoder.stages[0][0].convs[0].nonlin, nn.LeakyReLU)


@pytest.mark.parametrize(
    ("key", "value", "supported"),
    [
        ("conv_op", "torch.nn.modules.conv.Conv4d", "torch.nn.modules.conv.Conv3d"),
        ("conv_op", "torch.nn.InstanceNorm2d", "torch.nn.modules.conv.Conv2d"),  # right name, wrong role
        ("conv_op", None, "must name a layer class"),
        ("norm_op", "torch.nn.GroupNorm", "InstanceNorm2d"),
        ("dropout_op", "torch.nn.AlphaDropout", "Dropout2d"),
        ("nonlin", "os.system", "LeakyReLU"),  # never imported
    ],
)
def test_unsupported_layer_raises_plan_error(key: str, value: object, supported: str) -> None:
    plan = with_kwargs(small_architecture("Hippocampus_2d", False), **{key: value})
    with pytest.raises(PlanError) as info:
        build_network(plan, 1, 2)
    message = str(info.value)
    assert key in message and supported in message
    if value is not None:
        assert repr(value) in message


def test_unsupported_and_missing_arch_kwargs() -> None:
    plan = small_architecture("Hippocampus_2d", True)
    with pytest.raises(PlanError, match="unsupported block"):
        build_network(with_kwargs(plan, block="BottleneckD"), 1, 2)
    without_blocks = {k: v for k, v in plan.arch_kwargs.items() if k != "n_blocks_per_stage"}
    with pytest.raises(PlanError, match="missing n_blocks_per_stage"):
        build_network(replace(plan, arch_kwargs=without_blocks), 1, 2)
    with pytest.raises(PlanError, match="_kw_requires_import"):
        build_network(replace(plan, kw_requires_import=(*plan.kw_requires_import, "block")), 1, 2)


def test_inconsistent_lengths_raise_plan_error() -> None:
    plan = small_architecture("Oblique_3d_fullres", False)
    with pytest.raises(PlanError, match="kernel_sizes must have 4 entries"):
        build_network(with_kwargs(plan, kernel_sizes=plan.arch_kwargs["kernel_sizes"][:3]), 1, 2)
    with pytest.raises(PlanError, match="strides entry must have 3 entries"):
        build_network(with_kwargs(plan, strides=[[1, 1]] * 4), 1, 2)


# ------------------------------------------------------------------ structure and outputs
def test_encoder_is_registered_twice_like_nnunet() -> None:
    network = build_network(small_architecture("Hippocampus_2d", True), 1, 2)
    assert network.decoder.encoder is network.encoder
    keys = network.state_dict().keys()
    assert "encoder.stem.convs.0.conv.weight" in keys
    assert "decoder.encoder.stem.convs.0.all_modules.0.weight" in keys
    assert "encoder.stages.1.blocks.0.skip.1.norm.weight" in keys  # strided, projecting shortcut
    # parameters() de-duplicates: the optimiser sees each weight once
    assert len(list(network.parameters())) < len(keys)


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "resenc"])
def test_deep_supervision_outputs_and_runtime_switch(residual: bool) -> None:
    topology = "Oblique_3d_fullres"
    network = build_network(small_architecture(topology, residual), 2, 3).eval()
    x = torch.randn(1, 2, 4, 16, 8)
    with torch.no_grad():
        single = network(x)
        network.decoder.deep_supervision = True  # what nnU-Net's trainer does
        outputs = network(x)
    assert single.shape == (1, 3, 4, 16, 8)
    assert [tuple(o.shape[2:]) for o in outputs] == [(4, 16, 8), (4, 8, 4), (4, 4, 2)]
    torch.testing.assert_close(outputs[0], single)


# ------------------------------------------------------------------ initialisation
def test_initialisation_follows_nnunet() -> None:
    network = build_network(small_architecture("Tiff3D_3d_fullres", True), 1, 2)
    convs = [m for m in network.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
    assert all(m.bias is None or not m.bias.any() for m in convs)
    blocks = [m for m in network.modules() if isinstance(m, BasicResidualBlock)]
    assert blocks and all(not b.conv2.norm.weight.any() and not b.conv2.norm.bias.any() for b in blocks)
    assert all(b.conv1.norm.weight.eq(1).all() for b in blocks)

    untouched = build_network(small_architecture("Tiff3D_3d_fullres", True), 1, 2, initialize=False)
    assert untouched.decoder.seg_layers[0].bias.any()  # torch's default init, for a checkpoint to replace


# ------------------------------------------------------------------ feature maps
@pytest.mark.parametrize("topology", TOPOLOGIES, ids=[t.name for t in TOPOLOGIES])
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "resenc"])
@pytest.mark.parametrize("deep_supervision", [False, True], ids=["no_ds", "ds"])
def test_feature_map_method_agrees_with_planner(
    topology: Topology, residual: bool, deep_supervision: bool
) -> None:
    plan = full_architecture(topology, residual)
    with torch.device("meta"):  # real feature counts, no memory
        network = build_network(plan, 1, 4, deep_supervision, initialize=False)
    for size in (topology.patch_size, tuple(s + 5 for s in topology.patch_size)):
        assert network.compute_conv_feature_map_size(size) == architecture_feature_map_size(
            plan.network_class_name, plan.arch_kwargs, size, 4, deep_supervision
        )


def test_feature_map_size_wants_spatial_axes_only() -> None:
    network = build_network(small_architecture("Hippocampus_2d", False), 1, 2)
    with pytest.raises(ValueError, match="2 spatial sizes"):
        network.compute_conv_feature_map_size((1, 1, 56, 40))


def test_constructor_accepts_scalars_like_nnunet() -> None:
    network = PlainConvUNet(1, 3, 4, nn.Conv2d, 3, [1, 2, 2], 1, 2, 1, nonlin=nn.ReLU)
    assert network.encoder.kernel_sizes == [[3, 3]] * 3 and network.encoder.output_channels == [4, 4, 4]
    assert network(torch.randn(1, 1, 8, 8)).shape == (1, 2, 8, 8)
