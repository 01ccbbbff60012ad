"""Training precision schemes: which parts run in which format (issue 14).

``bf16-backward`` must compute the whole forward pass (convolutions, normalisation, activations, loss) in
float32, exactly as ``fp32`` does, and only the convolutions' input/weight gradients in bfloat16; it is the
CPU default where the CPU has native bfloat16 (float32 elsewhere); CUDA keeps nnU-Net's float16 AMP.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autoseg.errors import AutoSegError
from autoseg.training import precision as precision_module
from autoseg.training.losses import build_loss
from autoseg.training.precision import DESCRIPTIONS, PRECISIONS, choose_precision, cpu_has_native_bf16


def _network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(1, 8, 3, padding=1), nn.InstanceNorm3d(8, affine=True), nn.LeakyReLU(0.01),
        nn.Conv3d(8, 8, 3, stride=2, padding=1, bias=False), nn.InstanceNorm3d(8, affine=True), nn.LeakyReLU(0.01),
        nn.ConvTranspose3d(8, 8, 2, stride=2), nn.Conv3d(8, 3, 1),
    )


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    data = torch.randn(2, 1, 8, 12, 10, generator=generator)
    target = torch.randint(0, 3, (2, 1, 8, 12, 10), generator=generator)
    return data, target


def _run(scheme: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor, dict[str, torch.Tensor], list[torch.dtype]]:
    precision = choose_precision(torch.device("cpu"), scheme)
    network = precision.prepare(_network())
    norm_dtypes: list[torch.dtype] = []
    for module in network.modules():
        if isinstance(module, nn.InstanceNorm3d):
            module.register_forward_hook(lambda m, i, o: norm_dtypes.append(o.dtype))
    data, target = _batch()
    loss_function = build_loss(False, False, None, None)
    with precision.autocast():
        output = network(data)
        loss = loss_function(output, target)
    loss.backward()
    gradients = {name: p.grad.clone() for name, p in network.named_parameters()}
    return network, output, loss, gradients, norm_dtypes


def test_cpu_default_is_bf16_backward_with_native_bf16_else_float32_and_cuda_keeps_nnunet_amp(monkeypatch):
    cpu = choose_precision(torch.device("cpu"), "auto")
    assert cpu.autocast_dtype is None  # the forward pass is float32 either way
    assert cpu.bf16_convolution_backward == cpu_has_native_bf16()
    for native, expected in ((True, "bf16-backward"), (False, "fp32")):
        monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda native=native: native)
        assert choose_precision(torch.device("cpu"), "auto").name == expected
        assert choose_precision(torch.device("cpu"), "fp32").name == "fp32"  # an explicit choice is kept
    assert choose_precision(torch.device("mps"), "auto").name == "fp32"
    cuda = choose_precision(torch.device("cuda"), "auto")
    assert cuda.name == "fp16" and cuda.needs_grad_scaler
    assert set(DESCRIPTIONS) == set(PRECISIONS) - {"auto"}


def test_bf16_backward_forward_pass_is_float32_exactly():
    _, output32, loss32, _, norms32 = _run("fp32")
    _, output, loss, _, norms = _run("bf16-backward")
    assert output.dtype == torch.float32 and loss.dtype == torch.float32
    assert set(norms) == {torch.float32} and set(norms32) == {torch.float32}
    torch.testing.assert_close(output, output32, rtol=0, atol=0)  # the same float32 forward pass
    torch.testing.assert_close(loss, loss32, rtol=0, atol=0)


def test_bf16_backward_gradients_are_bf16_convolution_gradients_in_float32_parameters():
    network32, _, _, grads32, _ = _run("fp32")
    network, _, _, grads, _ = _run("bf16-backward")
    for name, parameter in network.named_parameters():
        assert parameter.dtype == torch.float32 and grads[name].dtype == torch.float32, name
    conv_weights = [n for n, m in network.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    differs = 0
    for module_name in conv_weights:
        name = f"{module_name}.weight"
        relative = (grads[name] - grads32[name]).norm() / grads32[name].norm()
        assert relative < 0.05, (name, float(relative))  # bfloat16 accuracy
        differs += int(not torch.equal(grads[name], grads32[name]))
    assert differs >= 3  # the weight gradients really come from bfloat16 kernels
    last = f"{conv_weights[-1]}.bias"  # its output gradient comes straight from the float32 loss: summed in float32
    torch.testing.assert_close(grads[last], grads32[last], rtol=1e-6, atol=1e-8)
    for name in grads:  # normalisation parameters: float32 throughout
        if name.startswith(("1.", "4.")):
            torch.testing.assert_close(grads[name], grads32[name], rtol=2e-2, atol=1e-5)


def test_bf16_autocast_runs_convolutions_in_bfloat16():
    _, output, loss, _, _ = _run("bf16")
    assert output.dtype == torch.bfloat16  # the last convolution's output under autocast
    assert loss.dtype == torch.float32


def test_unknown_or_unsupported_precision_is_refused():
    with pytest.raises(AutoSegError, match="Unknown precision"):
        choose_precision(torch.device("cpu"), "bf8")
    with pytest.raises(AutoSegError, match="not supported on MPS"):
        choose_precision(torch.device("mps"), "bf16-backward")
    network = nn.Sequential(nn.Conv3d(1, 2, 3, padding="same"))
    with pytest.raises(AutoSegError, match="explicit padding"):
        choose_precision(torch.device("cpu"), "bf16-backward").prepare(network)


def test_the_train_command_offers_exactly_these_schemes():
    from autoseg.cli import train as train_cli  # keeps its own copy so that `autoseg -h` does not import torch

    assert train_cli.PRECISIONS == PRECISIONS
