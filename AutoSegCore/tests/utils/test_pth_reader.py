"""load_checkpoint_without_torch: the same values as torch.load(weights_only=True), no code run from the file."""

from __future__ import annotations

import io
import os
import pickle
import re
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import autoseg
from autoseg.errors import ModelFolderError
from autoseg.network import build_network
from autoseg.network.checkpoint import load_checkpoint
from autoseg.plans.model import PLAIN_UNET_CLASS, RESENC_UNET_CLASS, ArchitecturePlan
from autoseg.utils.pth_reader import TensorPlaceholder, load_checkpoint_without_torch

COPY_AGAIN = "Copy it again from the training machine, or re-run training with --c to rewrite it."
REFUSED = "refers to code or objects that a model checkpoint never needs, so it was not loaded"


def _network(residual: bool) -> torch.nn.Module:
    """A tiny 3D U-Net of the kind nnU-Net trains (two stages, 2 and 4 features)."""
    kwargs: dict[str, Any] = {
        "n_stages": 2, "features_per_stage": [2, 4], "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * 2, "strides": [[1, 1, 1], [2, 2, 2]],
        **({"n_blocks_per_stage": [1, 3]} if residual else {"n_conv_per_stage": [2, 2]}),
        "n_conv_per_stage_decoder": [1 if residual else 2], "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    torch.manual_seed(0)
    return build_network(ArchitecturePlan(RESENC_UNET_CLASS if residual else PLAIN_UNET_CLASS, kwargs), 1, 3)


def _nnunet_checkpoint() -> dict[str, Any]:
    """A dict with nnU-Net's checkpoint keys and value types, after one SGD step with momentum."""
    network = _network(residual=True)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
    for parameter in network.parameters():  # the gradients of a backward pass, without its cost
        parameter.grad = torch.randn_like(parameter)
    optimizer.step()
    return {
        "network_weights": network.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "grad_scaler_state": torch.amp.GradScaler("cpu").state_dict(),
        "logging": {"mean_fg_dice": [np.float64(0.25), np.float64(0.5)], "ema_fg_dice": [np.float64(0.25), 0.3],
                    "train_losses": [np.float32(-0.1)], "epoch_end_timestamps": [1.5e9, 1.6e9]},
        "_best_ema": np.float64(0.4),
        "current_epoch": 2,
        "init_args": {"plans": {"configurations": {"3d_fullres": {"patch_size": [8, 8, 8]}}},
                      "configuration": "3d_fullres", "fold": 0, "dataset_json": {"labels": {"background": 0}},
                      "device": torch.device("cpu"), "other_device": torch.device("cuda", 0)},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }


def _expected_array(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().resolve_conj().resolve_neg()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def _assert_same(loaded: Any, expected: Any, where: str = "") -> None:
    """``loaded`` (our reader) holds what ``expected`` (torch.load) holds: arrays for tensors, str for devices."""
    if isinstance(expected, torch.Tensor):
        array = _expected_array(expected)
        assert isinstance(loaded, np.ndarray), where
        assert (loaded.dtype, loaded.shape) == (array.dtype, array.shape), where
        assert loaded.flags.c_contiguous and loaded.flags.writeable, where
        np.testing.assert_array_equal(loaded, array, err_msg=where)
    elif isinstance(expected, torch.device):
        assert loaded == str(expected), where
    elif isinstance(expected, dict):
        assert type(loaded) is type(expected) and list(loaded) == list(expected), where
        for key in expected:
            _assert_same(loaded[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(loaded, type(expected)) and len(loaded) == len(expected), where
        for index, (got, want) in enumerate(zip(loaded, expected)):
            _assert_same(got, want, f"{where}[{index}]")
    else:
        assert type(loaded) is type(expected) and loaded == expected, where


def _save(obj: Any, path: Path, **kwargs: Any) -> Path:
    torch.save(obj, path, **kwargs)
    return path


def _rewrite(source: Path, target: Path, changes: dict[str, bytes | None]) -> Path:
    """Copy the zip ``source``, replacing (bytes) or dropping (None) the records named in ``changes``."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            record = info.filename.split("/", 1)[1]
            data = changes[record] if record in changes else old.read(info)
            if data is not None:
                new.writestr(info.filename, data)
    return target


@pytest.mark.parametrize("residual", [False, True])
def test_network_state_dict_equals_torch_load(tmp_path, residual):
    path = _save({"network_weights": _network(residual).state_dict()}, tmp_path / "checkpoint_final.pth")
    _assert_same(load_checkpoint_without_torch(path), load_checkpoint(path))


def test_nnunet_checkpoint_equals_torch_load(tmp_path):
    path = _save(_nnunet_checkpoint(), tmp_path / "checkpoint_final.pth")
    expected = load_checkpoint(path)
    loaded = load_checkpoint_without_torch(path, tensor_keys=None)
    _assert_same(loaded, expected)
    assert loaded["init_args"]["device"] == "cpu" and loaded["init_args"]["other_device"] == "cuda:0"
    assert type(loaded["_best_ema"]) is np.float64 and loaded["inference_allowed_mirroring_axes"] == (0, 1, 2)
    momentum = loaded["optimizer_state"]["state"][0]["momentum_buffer"]
    assert momentum.shape == expected["optimizer_state"]["state"][0]["momentum_buffer"].shape


def test_by_default_only_network_weights_are_read(tmp_path):
    checkpoint = _nnunet_checkpoint()
    path = _save(checkpoint, tmp_path / "checkpoint_final.pth")
    loaded = load_checkpoint_without_torch(path)
    _assert_same(loaded["network_weights"], checkpoint["network_weights"])
    state = checkpoint["optimizer_state"]["state"]
    assert loaded["optimizer_state"]["state"] == {
        index: {"momentum_buffer": TensorPlaceholder("float32", tuple(value["momentum_buffer"].shape))}
        for index, value in state.items()
    }
    assert loaded["optimizer_state"]["param_groups"] == checkpoint["optimizer_state"]["param_groups"]
    assert loaded["logging"]["mean_fg_dice"] == [0.25, 0.5] and loaded["trainer_name"] == "nnUNetTrainer"


def test_skipped_storages_are_not_read(tmp_path):
    """The optimizer's storages (pickled after the weights: keys n, n+1, ...) may be missing or damaged."""
    checkpoint = _nnunet_checkpoint()
    # the decoder refers to the encoder, so the state dict lists some tensors twice
    n_weights = len({tensor.untyped_storage().data_ptr() for tensor in checkpoint["network_weights"].values()})
    path = _save(checkpoint, tmp_path / "full.pth")
    with zipfile.ZipFile(path) as archive:
        keys = sorted(int(name.rsplit("/", 1)[1]) for name in archive.namelist() if "/data/" in name)
    assert len(keys) == n_weights + len(checkpoint["optimizer_state"]["state"])
    changes: dict[str, bytes | None] = {f"data/{key}": None for key in keys[n_weights::2]}
    changes |= {f"data/{key}": b"\x00" for key in keys[n_weights + 1::2]}
    damaged = _rewrite(path, tmp_path / "damaged.pth", changes)
    loaded = load_checkpoint_without_torch(damaged, tensor_keys=["network_weights"])
    _assert_same(loaded["network_weights"], checkpoint["network_weights"])
    with pytest.raises(ModelFolderError, match=rf"damaged.pth is unreadable or truncated .*{COPY_AGAIN}"):
        load_checkpoint_without_torch(damaged, tensor_keys=None)
    nothing_read = load_checkpoint_without_torch(damaged, tensor_keys=())
    assert isinstance(nothing_read["network_weights"]["decoder.seg_layers.0.bias"], TensorPlaceholder)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64,
                                   torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool, torch.uint16,
                                   torch.complex64])
def test_dtypes(tmp_path, dtype):
    values = torch.linspace(-3, 300, 24).reshape(2, 3, 4)
    tensor = (values > 100) if dtype == torch.bool else values.to(dtype)
    path = _save({"network_weights": {"t": tensor, "v": tensor.transpose(0, 2)[1:]}}, tmp_path / "c.pth")
    loaded = load_checkpoint_without_torch(path)
    _assert_same(loaded, load_checkpoint(path))
    assert load_checkpoint_without_torch(path, ())["network_weights"]["t"] == TensorPlaceholder(
        str(dtype).removeprefix("torch."), (2, 3, 4))


def test_views_scalars_and_empty_tensors(tmp_path):
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    weights = {
        "base": base, "transposed": base.permute(2, 0, 1), "slice": base[1:, 2], "strided": base[:, ::2, 1::3],
        "row": base[2, 3], "scalar": torch.tensor(7.5), "element": base[1, 2, 3], "empty": torch.empty(0, 3),
        "empty_view": base[:, 4:4], "expanded": torch.ones(3, 1).expand(3, 4), "parameter": torch.nn.Parameter(base[0]),
        "conj": torch.tensor([1 + 2j, 3 - 1j]).conj(), "neg": torch.tensor([1 + 2j]).conj().imag,
    }
    path = _save({"network_weights": weights}, tmp_path / "views.pth")
    loaded = load_checkpoint_without_torch(path)["network_weights"]
    _assert_same(loaded, load_checkpoint(path)["network_weights"])
    assert loaded["scalar"].shape == () and loaded["empty"].shape == (0, 3)
    loaded["base"][...] = -1  # every array owns its data: editing one leaves the others (same storage) intact
    np.testing.assert_array_equal(loaded["slice"], base[1:, 2].numpy())


def test_big_endian_and_missing_byteorder_record(tmp_path):
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    path = _save({"network_weights": {"a": tensor, "b": tensor.t()}}, tmp_path / "little.pth")
    swapped = tensor.numpy().astype(">f4").tobytes()
    big = _rewrite(path, tmp_path / "big.pth", {"byteorder": b"big", "data/0": swapped})
    _assert_same(load_checkpoint_without_torch(big)["network_weights"], {"a": tensor, "b": tensor.t()})
    unmarked = _save({"network_weights": {"a": tensor}}, tmp_path / "unmarked.pth", _disable_byteorder_record=True)
    _assert_same(load_checkpoint_without_torch(unmarked)["network_weights"], {"a": tensor})


def test_checkpoint_without_crc_and_saved_to_a_buffer(tmp_path):
    """torch writes CRC 0 when CRC-32 is switched off and names the folder "archive" when saving to a buffer."""
    weights = {"w": torch.arange(5.0)}
    torch.serialization.set_crc32_options(False)
    try:
        no_crc = _save({"network_weights": weights}, tmp_path / "no_crc.pth")
    finally:
        torch.serialization.set_crc32_options(True)
    buffer = io.BytesIO()
    torch.save({"network_weights": weights}, buffer)
    (tmp_path / "buffer.pth").write_bytes(buffer.getvalue())
    for path in (no_crc, tmp_path / "buffer.pth"):
        _assert_same(load_checkpoint_without_torch(path)["network_weights"], weights)


class _Runs:
    """Pickles as a call of ``function(*arguments)``, as a crafted checkpoint would."""

    def __init__(self, function: Any, *arguments: Any) -> None:
        self.function, self.arguments = function, arguments

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.function, self.arguments


def _attacks(sentinel: Path) -> dict[str, tuple[Any, str]]:
    touch = f"open({str(sentinel)!r}, 'w').close()"
    return {
        "os.system": (_Runs(os.system, f"touch {sentinel}"), r"GLOBAL '(posix|os|nt)\.system'"),
        "eval": (_Runs(eval, touch), r"GLOBAL 'builtins\.eval'"),
        "exec": (_Runs(exec, touch), r"GLOBAL 'builtins\.exec'"),
        "Popen": (_Runs(subprocess.Popen, ["touch", str(sentinel)]), r"GLOBAL 'subprocess\.Popen'"),
    }


@pytest.mark.parametrize("attack", ["os.system", "eval", "exec", "Popen"])
def test_code_in_data_pkl_is_refused_and_not_run(tmp_path, attack):
    sentinel = tmp_path / "pwned"
    payload, found = _attacks(sentinel)[attack]
    valid = _save({"network_weights": {"w": torch.ones(2)}}, tmp_path / "valid.pth")
    data = pickle.dumps({"network_weights": {}, "init_args": payload}, protocol=2)
    for crafted in (_rewrite(valid, tmp_path / "evil.pth", {"data.pkl": data}),
                    _save({"network_weights": {"w": torch.ones(2)}, "extra": [payload]}, tmp_path / "evil2.pth")):
        with pytest.raises(ModelFolderError, match=rf"Checkpoint .*{crafted.name} {REFUSED} .*Found: {found}"):
            load_checkpoint_without_torch(crafted, tensor_keys=None)
    bare = tmp_path / "bare_pickle.pth"  # the pickle alone, not in a zip: never unpickled at all
    bare.write_bytes(pickle.dumps({"network_weights": payload}))
    with pytest.raises(ModelFolderError, match="bare_pickle.pth is not a valid PyTorch checkpoint"):
        load_checkpoint_without_torch(bare)
    assert not sentinel.exists()


def test_unexpected_reduce_is_refused(tmp_path):
    valid = _save({"network_weights": {}}, tmp_path / "valid.pth")
    # {"network_weights": "abc"()}: a REDUCE of a string, which no allowed global produced
    data = b"\x80\x02}X\x0f\x00\x00\x00network_weightsX\x03\x00\x00\x00abc)Rs."
    crafted = _rewrite(valid, tmp_path / "reduce.pth", {"data.pkl": data})
    with pytest.raises(ModelFolderError, match=rf"{REFUSED} .*Found: an unexpected call or object \(TypeError"):
        load_checkpoint_without_torch(crafted)


@pytest.mark.parametrize(("name", "body", "message"), [
    # before running anything: a memo index far beyond the data (the C unpickler would size its memo to it) ...
    ("memo", b"r\x40\x42\x0f\x00", r"is unreadable or truncated \(data.pkl: memo index 1000000 at byte"),
    # ... counts of bytes the data does not hold (it would allocate them first) ...
    ("bytes8", b"\x8e" + (1 << 40).to_bytes(8, "little"), r"is unreadable or truncated \(data.pkl: ValueError"),
    # ... and opcodes torch never writes
    ("buffer", b"\x97", rf"{REFUSED} .*Found: pickle opcode NEXT_BUFFER"),
    ("ext", b"\x82\x01", rf"{REFUSED} .*Found: pickle opcode EXT1"),
])
def test_crafted_opcodes_are_refused(tmp_path, name, body, message):
    valid = _save({"network_weights": {}}, tmp_path / "valid.pth")
    data = b"\x80\x02}X\x0f\x00\x00\x00network_weights" + body + b"s."
    with pytest.raises(ModelFolderError, match=message):
        load_checkpoint_without_torch(_rewrite(valid, tmp_path / f"{name}.pth", {"data.pkl": data}))


def test_damaged_files_are_refused(tmp_path):
    valid = _save({"network_weights": {"w": torch.arange(4.0)}}, tmp_path / "valid.pth")
    cut = tmp_path / "cut.pth"
    cut.write_bytes(valid.read_bytes()[: valid.stat().st_size // 2])
    noise = tmp_path / "noise.pth"
    noise.write_bytes(np.random.default_rng(0).bytes(4000))
    for path in (cut, noise):
        message = rf"{path.name} is not a valid PyTorch checkpoint; it is unreadable or truncated\. {COPY_AGAIN}"
        with pytest.raises(ModelFolderError, match=message):
            load_checkpoint_without_torch(path)
    cases = {
        "missing.pth": _rewrite(valid, tmp_path / "missing.pth", {"data/0": None}),
        "short.pth": _rewrite(valid, tmp_path / "short.pth", {"data/0": b"\x00" * 8}),
        "outside.pth": _rewrite(valid, tmp_path / "outside.pth", {"data.pkl": _with_size(valid, 4, 9)}),
        "half_pickle.pth": _rewrite(valid, tmp_path / "half_pickle.pth", {"data.pkl": _data_pkl(valid)[:40]}),
    }
    details = {"missing.pth": "the storage record valid/data/0 is missing",
               "short.pth": "the storage record valid/data/0 has 8 bytes, 16 expected",
               "outside.pth": "a tensor of shape (9,) reaches element 8 of a storage of 4 elements",
               "half_pickle.pth": "data.pkl: "}
    for name, path in cases.items():
        with pytest.raises(ModelFolderError, match=rf"{name} is unreadable or truncated \({re.escape(details[name])}"):
            load_checkpoint_without_torch(path)


def _data_pkl(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(f"{path.stem}/data.pkl")  # torch.save names the folder after the file


def _with_size(path: Path, old: int, new: int) -> bytes:
    """data.pkl of a one-tensor checkpoint with the tensor's size (BININT1 after the offset 0) changed."""
    data = _data_pkl(path)
    pattern = b"K\x00K" + bytes([old]) + b"\x85"
    assert data.count(pattern) == 1
    return data.replace(pattern, b"K\x00K" + bytes([new]) + b"\x85")


def test_legacy_format_missing_file_and_other_objects(tmp_path):
    legacy = _save({"network_weights": {"w": torch.ones(2)}}, tmp_path / "legacy.pth",
                   _use_new_zipfile_serialization=False)
    with pytest.raises(ModelFolderError, match=r"legacy.pth is saved in PyTorch's legacy format .*re-save it with "
                                               r"torch.save in PyTorch >= 1.6"):
        load_checkpoint_without_torch(legacy)
    with pytest.raises(ModelFolderError, match=r"Checkpoint .*absent.pth does not exist"):
        load_checkpoint_without_torch(tmp_path / "absent.pth")
    weights_only = _save(OrderedDict(w=torch.ones(2)), tmp_path / "weights.pth")
    with pytest.raises(ModelFolderError, match=r"weights.pth is not an nnU-Net/AutoSeg checkpoint: .*found "
                                               r"OrderedDict with keys \['w'\]"):
        load_checkpoint_without_torch(weights_only)
    with pytest.raises(ModelFolderError, match=r"is not an nnU-Net/AutoSeg checkpoint: .*found list\."):
        load_checkpoint_without_torch(_save([torch.ones(2)], tmp_path / "list.pth"))
    with pytest.raises(ModelFolderError, match=r"holds tensors of type torch.float8_e4m3fn, which have no numpy"):
        load_checkpoint_without_torch(_save({"network_weights": torch.ones(2).to(torch.float8_e4m3fn)},
                                            tmp_path / "fp8.pth"))


def test_reads_without_torch_installed(tmp_path):
    checkpoint = _nnunet_checkpoint()
    path = _save(checkpoint, tmp_path / "checkpoint_final.pth")
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from autoseg.utils.pth_reader import load_checkpoint_without_torch\n"
        "checkpoint = load_checkpoint_without_torch(sys.argv[1])\n"
        "np.savez(sys.argv[2], **checkpoint['network_weights'])\n"
        "assert checkpoint['init_args']['device'] == 'cpu', checkpoint['init_args']\n"
        "assert not [name for name, module in sys.modules.items() if name.startswith('torch') and module]\n"
    )
    package_root = str(Path(autoseg.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "weights.npz"
    done = subprocess.run([sys.executable, "-c", script, str(path), str(out)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with np.load(out) as arrays:
        _assert_same(dict(arrays), dict(checkpoint["network_weights"]))
