"""nnU-Net's U-Nets as OpenVINO models, built from the plans and a state dict, without torch.

:func:`build_openvino_model` reads a plan's ``architecture`` (PlainConvUNet or ResidualEncoderUNet, 2D or
3D, every layer option the torch networks of :mod:`autoseg.network` support) and the checkpoint's
``network_weights`` as numpy arrays (nnU-Net's keys), and returns a float32 graph computing the last
segmentation head's logits, as the torch network does in eval mode. Optionally the graph also does the
mirrored test-time augmentation, all copies in one batched pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import openvino as ov
import openvino.opset16 as ops

from autoseg.errors import PlanError
from autoseg.inference import openvino_layers as layers
from autoseg.inference.openvino_layers import Tensor
from autoseg.plans.architecture_args import UNetArchitecture, parse_architecture
from autoseg.plans.model import ArchitecturePlan

Shape = tuple[int, ...]


class _Weights:
    """Hands out checkpoint arrays by state-dict key, recording what is missing, mis-shaped or left over.

    Keys torch's state dict holds twice (``.all_modules.<i>.`` and ``decoder.encoder.`` aliases), the
    ``num_batches_tracked`` counters and the deep-supervision heads of lower decoder stages may be present
    (their shapes are checked) but are not needed.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.known: set[str] = set()
        self.missing: list[str] = []
        self.mismatched: list[str] = []

    def _check_shape(self, key: str, shape: Shape | None) -> bool:
        found = tuple(np.shape(self.arrays[key]))
        if shape is None or found == shape:
            return True
        self.mismatched.append(f"{key}: checkpoint {found}, model {shape}")
        return False

    def allow(self, key: str, shape: Shape | None) -> None:
        """``key`` may be in the checkpoint (with ``shape`` unless None), but is not used."""
        for name in (key, f"decoder.{key}") if key.startswith("encoder.") else (key,):
            self.known.add(name)
            if name in self.arrays:
                self._check_shape(name, shape)

    def take(self, key: str, shape: Shape, alias: str | None = None) -> np.ndarray:
        """The float32 array stored under ``key`` (zeros, recorded, if missing or of another shape)."""
        if alias is not None:
            self.allow(alias, shape)
        if key.startswith("encoder."):
            self.allow(f"decoder.{key}", shape)
        self.known.add(key)
        if key not in self.arrays:
            self.missing.append(key)
        elif self._check_shape(key, shape):
            return np.asarray(self.arrays[key], dtype=np.float32)
        return np.zeros(shape, np.float32)

    def check(self, network_class: str) -> None:
        """Raise ValueError if a key was missing, mis-shaped or never asked for (as load_state_dict strict)."""
        unexpected = [key for key in self.arrays if key not in self.known]
        problems = [
            f"{what} ({len(keys)}): {', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''}"
            for what, keys in (
                ("missing key(s)", self.missing), ("unexpected key(s)", unexpected),
                ("size mismatch", self.mismatched),
            )
            if keys
        ]
        if problems:
            raise ValueError(
                f"The weights do not fit the plan's {network_class}: {'; '.join(problems)}.\n"
                "Use the checkpoint trained with this plans file and configuration, for the same number of "
                "input channels and outputs (nnU-Net's state-dict keys, numpy arrays)."
            )


class _UNetBuilder:
    """Adds the layers of one U-Net to a graph, in torch's structure and state-dict key names."""

    def __init__(self, arch: UNetArchitecture, weights: _Weights) -> None:
        self.arch = arch
        self.weights = weights
        self.dim = arch.dim
        self.norm_args, self.nonlin_args, _ = (
            {} if layer.name is None else layers.layer_arguments(layer.name, layer.kwargs, arch.network_class)
            for layer in (arch.norm, arch.nonlin, arch.dropout)
        )

    def _take(self, prefix: str, layer: str, index: int | None, param: str, shape: Shape) -> np.ndarray:
        alias = None if index is None else f"{prefix}.all_modules.{index}.{param}"
        return self.weights.take(f"{prefix}.{layer}.{param}", shape, alias)

    def _norm(self, x: Tensor, prefix: str, index: int, channels: int) -> Tensor:
        """The plan's norm_op (eval mode) over ``channels`` channels; ``index`` in ``all_modules``."""
        args, shape = self.norm_args, (channels,)
        weight = bias = None
        if args["affine"]:
            weight = self._take(prefix, "norm", index, "weight", shape)
            bias = self._take(prefix, "norm", index, "bias", shape)
        if not args["track_running_stats"]:
            if not str(self.arch.norm.name).startswith("Instance"):
                raise PlanError(
                    f"{self.arch.norm.name} with track_running_stats=False (batch statistics at inference) is not "
                    "supported by the OpenVINO engine; predict with the torch engine."
                )
            return layers.scale_and_shift(layers.instance_norm(x, self.dim, args["eps"]), weight, bias, self.dim)
        mean = self._take(prefix, "norm", index, "running_mean", shape)
        var = self._take(prefix, "norm", index, "running_var", shape)
        for name in (f"{prefix}.norm.num_batches_tracked", f"{prefix}.all_modules.{index}.num_batches_tracked"):
            self.weights.allow(name, None)
        return layers.running_stats_norm(x, mean, var, args["eps"], weight, bias)

    def _nonlin(self, x: Tensor, prefix: str, layer: str, index: int | None, channels: int) -> Tensor:
        name = self.arch.nonlin.name
        assert name is not None
        weight = None
        if name == "PReLU":
            n = int(self.nonlin_args["num_parameters"])
            if n not in (1, channels):
                raise PlanError(
                    f"Cannot build {self.arch.network_class}: PReLU has num_parameters={n}, but a convolution "
                    f"of the plan has {channels} output channels (PReLU needs 1 or as many as channels)."
                )
            weight = self._take(prefix, layer, index, "weight", (n,))
        return layers.nonlinearity(x, name, self.nonlin_args, weight)

    def conv_block(self, x: Tensor, prefix: str, channels: tuple[int, int], kernel: Sequence[int],
                   stride: Sequence[int], *, full: bool = True, bias: bool | None = None) -> Tensor:
        """ConvDropoutNormNonlin at ``prefix``: conv, (dropout), norm, nonlin (the last two swapped by
        ``nonlin_first``); ``full=False`` leaves out dropout and nonlin (the conv before a residual sum)."""
        arch, (in_channels, out_channels) = self.arch, channels
        weight = self._take(prefix, "conv", 0, "weight", (out_channels, in_channels, *kernel))
        use_bias = arch.conv_bias if bias is None else bias
        conv_bias = self._take(prefix, "conv", 0, "bias", (out_channels,)) if use_bias else None
        x = layers.convolution(x, weight, conv_bias, stride)
        index = 1 + (full and arch.dropout.name is not None)  # dropout: identity in eval mode
        steps = []
        if arch.norm.name is not None:
            steps.append("norm")
        if full and arch.nonlin.name is not None:
            steps.insert(0 if arch.nonlin_first else len(steps), "nonlin")
        for offset, step in enumerate(steps):
            if step == "norm":
                x = self._norm(x, prefix, index + offset, out_channels)
            else:
                x = self._nonlin(x, prefix, "nonlin", index + offset, out_channels)
        return x

    def residual_block(self, x: Tensor, prefix: str, channels: tuple[int, int], kernel: Sequence[int],
                       stride: Sequence[int]) -> Tensor:
        """BasicResidualBlock: conv1, conv2 (no nonlin), plus the shortcut (pool, 1x1 projection), nonlin2."""
        in_channels, out_channels = channels
        residual, index = x, 0
        if any(s != 1 for s in stride):
            residual, index = layers.average_pool(residual, stride), 1
        if in_channels != out_channels:
            ones = [1] * self.dim
            residual = self.conv_block(residual, f"{prefix}.skip.{index}", channels, ones, ones, full=False, bias=False)
        out = self.conv_block(x, f"{prefix}.conv1", channels, kernel, stride)
        out = self.conv_block(out, f"{prefix}.conv2", (out_channels, out_channels), kernel, [1] * self.dim, full=False)
        out = ops.add(out, residual)
        if self.arch.nonlin.name is None:
            return out
        return self._nonlin(out, prefix, "nonlin2", None, out_channels)

    def encoder(self, x: Tensor, input_channels: int) -> list[Tensor]:
        """The output of every encoder stage (the skips, bottleneck last)."""
        arch, ones = self.arch, [1] * self.dim
        in_channels, skips = input_channels, []
        if arch.residual:
            in_channels = arch.features[0]
            x = self.conv_block(x, "encoder.stem.convs.0", (input_channels, in_channels), arch.kernel_sizes[0], ones)
        for s, out_channels in enumerate(arch.features):
            for i in range(arch.encoder_blocks[s]):
                channels, stride = (in_channels, out_channels), arch.strides[s] if i == 0 else ones
                if arch.residual:
                    x = self.residual_block(x, f"encoder.stages.{s}.blocks.{i}", channels, arch.kernel_sizes[s], stride)
                else:
                    x = self.conv_block(x, f"encoder.stages.{s}.0.convs.{i}", channels, arch.kernel_sizes[s], stride)
                in_channels = out_channels
            skips.append(x)
        return skips

    def decoder(self, skips: list[Tensor], num_classes: int) -> Tensor:
        """Transposed conv, concatenation with the skip (upsampled first), conv blocks; the last head's logits."""
        arch, x = self.arch, skips[-1]
        last = len(arch.decoder_convs) - 1
        for s, n_convs in enumerate(arch.decoder_convs):
            below, channels, stride = arch.features[-(s + 1)], arch.features[-(s + 2)], arch.strides[-(s + 1)]
            weight = self.weights.take(f"decoder.transpconvs.{s}.weight", (below, channels, *stride))
            bias = self.weights.take(f"decoder.transpconvs.{s}.bias", (channels,)) if arch.conv_bias else None
            x = ops.concat([layers.transposed_convolution(x, weight, bias, stride), skips[-(s + 2)]], 1)
            for i in range(n_convs):
                in_channels = 2 * channels if i == 0 else channels
                kernel = arch.kernel_sizes[-(s + 2)]
                x = self.conv_block(x, f"decoder.stages.{s}.convs.{i}", (in_channels, channels), kernel, [1] * self.dim)
            head = f"decoder.seg_layers.{s}"
            shapes = {"weight": (num_classes, channels, *[1] * self.dim), "bias": (num_classes,)}
            if s < last:  # deep-supervision heads: in checkpoints, unused without deep supervision
                for param, shape in shapes.items():
                    self.weights.allow(f"{head}.{param}", shape)
                continue
            weight, bias = (self.weights.take(f"{head}.{param}", shape) for param, shape in shapes.items())
            x = layers.convolution(x, weight, bias, [1] * self.dim)
        return x


def _stage_sizes(arch: UNetArchitecture, spatial: Sequence[int]) -> None:
    """Raise ValueError unless every decoder stage's upsampled size equals its skip's (as torch.cat needs)."""
    sizes = []
    size = list(spatial)
    for kernel, stride in zip(arch.kernel_sizes, arch.strides):
        size = [(n + 2 * ((k - 1) // 2) - k) // s + 1 for n, k, s in zip(size, kernel, stride)]
        if min(size) < 1:
            break
        sizes.append(size)
    if len(sizes) == len(arch.features) and all(
        [n * s for n, s in zip(sizes[i + 1], arch.strides[i + 1])] == sizes[i] for i in range(len(sizes) - 1)
    ):
        return
    raise ValueError(
        f"input_shape's spatial size {tuple(spatial)} does not fit the plan's strides {arch.strides}: "
        "every axis must be divisible by the product of its strides (use the plan's patch size)."
    )


def _mirror_combinations(mirror_axes: Sequence[int], dim: int) -> list[tuple[int, ...]]:
    """Non-empty flip combinations of the spatial ``mirror_axes``, as tensor axes, in nnU-Net's order."""
    if any(not 0 <= int(a) < dim for a in mirror_axes):
        raise ValueError(f"mirror axes {tuple(mirror_axes)} do not fit a {dim}D input")
    axes = [int(a) + 2 for a in mirror_axes]
    return [c for k in range(1, len(axes) + 1) for c in itertools.combinations(axes, k)]


def _mirrored_mean(network: Callable[[Tensor], Tensor], x: Tensor, combinations: list[tuple[int, ...]]) -> Tensor:
    """Mean of ``network`` on ``x`` and its flips, each flipped back and summed in order; one batched pass."""
    copies = [x, *(layers.flip(x, axes) for axes in combinations)]
    parts = ops.split(network(ops.concat(copies, 0)), 0, len(copies))
    total: Tensor = parts.output(0)
    for i, axes in enumerate(combinations, start=1):
        total = ops.add(total, layers.flip(parts.output(i), axes))
    return ops.divide(total, layers.constant(np.array(len(copies))))


def _check_input_shape(input_shape: Sequence[int], dim: int, num_input_channels: int) -> list[int]:
    """``input_shape`` as ints; ValueError unless (batch or -1, num_input_channels, *dim positive sizes)."""
    shape = [int(n) for n in input_shape]
    if len(shape) != dim + 2 or shape[1] != num_input_channels or min(shape[2:]) < 1 or not (
        shape[0] >= 1 or shape[0] == -1
    ):
        raise ValueError(
            f"input_shape must be (batch, {num_input_channels}, {dim} spatial sizes) with batch >= 1 or -1 "
            f"(dynamic), got {tuple(input_shape)}."
        )
    return shape


def build_openvino_model(
    architecture: ArchitecturePlan,
    num_input_channels: int,
    num_output_channels: int,
    weights: Mapping[str, np.ndarray],
    input_shape: Sequence[int],
    mirror_axes: Sequence[int] | None = None,
) -> ov.Model:
    """The plan's U-Net as an OpenVINO model: input ``input`` of ``input_shape`` (batch -1: dynamic),
    output ``logits`` of shape (batch, ``num_output_channels``, *spatial), float32 throughout.

    ``weights``: the torch state dict as numpy arrays (nnU-Net checkpoint keys); ValueError when keys are
    missing, unexpected or of another shape. ``mirror_axes`` (spatial, 0-based): the output is the mean over
    the input and all its flips along those axes (nnU-Net's test-time augmentation), in one batched pass.
    PlanError for an architecture AutoSeg does not build.
    """
    arch = parse_architecture(architecture)
    shape = _check_input_shape(input_shape, arch.dim, num_input_channels)
    _stage_sizes(arch, shape[2:])
    combinations = _mirror_combinations(mirror_axes or (), arch.dim)
    store = _Weights(weights)
    builder = _UNetBuilder(arch, store)

    def network(batch: Tensor) -> Tensor:
        return builder.decoder(builder.encoder(batch, num_input_channels), num_output_channels)

    x = ops.parameter(ov.PartialShape(shape), np.float32, name="input")
    x.output(0).get_tensor().set_names({"input"})
    out = _mirrored_mean(network, x, combinations) if combinations else network(x)
    store.check(arch.network_class)
    result = ops.result(out, name="logits")
    result.output(0).get_tensor().set_names({"logits"})
    return ov.Model([result], [x], f"{arch.network_class}_{arch.dim}d")
