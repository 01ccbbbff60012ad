"""Oracle tests: our U-Nets against dynamic_network_architectures', both built from the same plan.

The networks must have the same state-dict keys (same order) and shapes, load each other's weights strictly,
compute the same outputs (eval and train mode, with and without deep supervision), get the same weights
from the same seed, and report the same feature-map sizes.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from network_cases import TOPOLOGIES, TOPOLOGY_BY_NAME, Topology, full_architecture, small_architecture
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn

from autoseg.network import build_network
from autoseg.plans.feature_maps import architecture_feature_map_size
from autoseg.plans.model import ArchitecturePlan

pytestmark = pytest.mark.oracle

IN_CHANNELS, CLASSES = 2, 3

#: (topology, residual, options): every dimension, 4 to 7 stages, anisotropic kernels and strides, and
#: batch norm / dropout / other nonlinearities / nonlin_first / no conv bias.
FORWARD_CASES: list[tuple[str, bool, dict[str, Any]]] = [
    ("Hippocampus_2d", False, {}),
    ("BraTS_2d", False, {}),
    ("Oblique_3d_fullres", False, {}),
    ("CTTotal_3d_fullres", False, dict(
        norm="batchnorm.BatchNorm", dropout=0.2, nonlin="torch.nn.modules.activation.ReLU", conv_bias=False,
        nonlin_first=True,
    )),
    ("PNG2D_2d", True, {}),
    ("Oblique_3d_fullres", True, {}),
    ("CTTotal_3d_fullres", True, {}),
    ("Tiff3D_3d_fullres", True, dict(
        norm="batchnorm.BatchNorm", dropout=0.3, nonlin="torch.nn.PReLU", nonlin_kwargs={},
    )),
]
CASE_IDS = [f"{'resenc' if r else 'plain'}-{t}{'-variant' if o else ''}" for t, r, o in FORWARD_CASES]


def theirs(architecture: ArchitecturePlan, deep_supervision: bool, allow_init: bool = True) -> nn.Module:
    return get_network_from_plans(
        architecture.network_class_name, architecture.arch_kwargs, architecture.kw_requires_import,
        IN_CHANNELS, CLASSES, allow_init=allow_init, deep_supervision=deep_supervision,
    )


def ours(architecture: ArchitecturePlan, deep_supervision: bool, initialize: bool = True) -> nn.Module:
    return build_network(architecture, IN_CHANNELS, CLASSES, deep_supervision, initialize=initialize)


def as_list(output: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    return output if isinstance(output, list) else [output]


def assert_same_outputs(expected: Any, actual: Any) -> None:
    assert isinstance(actual, list) == isinstance(expected, list)
    expected, actual = as_list(expected), as_list(actual)
    assert [e.shape for e in expected] == [a.shape for a in actual]
    for e, a in zip(expected, actual, strict=True):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5)


@pytest.fixture(params=[False, True], ids=["no_ds", "ds"])
def deep_supervision(request: pytest.FixtureRequest) -> bool:
    return request.param


@pytest.mark.parametrize(("topology", "residual", "options"), FORWARD_CASES, ids=CASE_IDS)
def test_same_weights_and_outputs(
    topology: str, residual: bool, options: dict[str, Any], deep_supervision: bool
) -> None:
    architecture = small_architecture(topology, residual, **options)
    torch.manual_seed(0)
    reference = theirs(architecture, deep_supervision)
    torch.manual_seed(0)
    network = ours(architecture, deep_supervision)

    expected, actual = reference.state_dict(), network.state_dict()
    assert list(actual) == list(expected)  # same keys, duplicates included, in the same order
    assert {k: v.shape for k, v in actual.items()} == {k: v.shape for k, v in expected.items()}
    # Same construction and initialisation order: the same seed gives bit-identical weights.
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key

    with torch.no_grad():  # make sure the strict load really transfers weights
        for p in reference.parameters():
            p.normal_()
    network.load_state_dict(reference.state_dict(), strict=True)

    x = torch.randn(2, IN_CHANNELS, *TOPOLOGY_BY_NAME[topology].small_input)
    # train: dropout under the same seed and batch statistics; eval: running statistics
    for train in (True, False):
        reference.train(train)
        network.train(train)
        with torch.no_grad():
            torch.manual_seed(1)
            expected_out = reference(x)
            torch.manual_seed(1)
            actual_out = network(x)
        assert_same_outputs(expected_out, actual_out)
    expected, actual = reference.state_dict(), network.state_dict()  # running statistics updated alike
    assert [k for k, v in expected.items() if not torch.allclose(actual[k], v, rtol=0, atol=1e-6)] == []


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=[t.name for t in TOPOLOGIES])
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "resenc"])
def test_feature_map_size_matches_nnunet(topology: Topology, residual: bool, deep_supervision: bool) -> None:
    """Real plans at full size: built on the meta device, only the arithmetic is exercised."""
    architecture = full_architecture(topology, residual)
    with torch.device("meta"):
        reference = theirs(architecture, deep_supervision, allow_init=False)
        network = ours(architecture, deep_supervision, initialize=False)
    for size in (topology.patch_size, tuple(s + 3 for s in topology.patch_size)):
        expected = int(reference.compute_conv_feature_map_size(size))
        assert network.compute_conv_feature_map_size(size) == expected
        assert architecture_feature_map_size(
            architecture.network_class_name, architecture.arch_kwargs, size, CLASSES, deep_supervision
        ) == expected
