"""Read PyTorch ``.pth`` checkpoints (``checkpoint_final.pth`` ...) into numpy arrays, without torch.

``torch.save`` (PyTorch >= 1.6) writes a zip: ``<prefix>/data.pkl`` (the pickled object, every tensor a call of
``torch._utils._rebuild_tensor_v2`` on a persistent id ``('storage', torch.FloatStorage, key, location, numel)``),
``<prefix>/data/<key>`` (each storage's raw bytes), ``<prefix>/byteorder`` and version records. This module
parses that layout itself, so that an inference engine can read nnU-Net/AutoSeg checkpoints where torch is not
installed (it never imports torch, not even lazily); tensors come back as contiguous numpy arrays (bfloat16
widened to float32), ``torch.device`` as a string such as ``"cuda:0"``, ``torch.Size`` as a tuple.

``data.pkl`` is read by an unpickler that resolves only an explicit allow-list: ``collections.OrderedDict``,
torch's tensor/parameter rebuild functions, typed storage classes and dtypes with a numpy equivalent,
``torch.device``, ``torch.Size``, ``_codecs.encode`` (only for the latin-1 bytes of protocol-2 pickles) and the
numpy globals of :data:`autoseg.utils.safe_pickle.NUMPY_GLOBALS`. Everything else (``os.system``, ``eval``, any
class of the training code) is refused with a :class:`~autoseg.errors.ModelFolderError` before anything runs, as
are files in torch's legacy (pre-1.6) format, truncated files and tensors that point outside their storage.
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import pickle
import pickletools
import re
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from autoseg.errors import ModelFolderError
from autoseg.utils.safe_pickle import NUMPY_GLOBALS, GlobalKey

__all__ = ["TensorPlaceholder", "load_checkpoint_without_torch"]

#: The first pickle of torch's legacy (pre-1.6, non-zip) format is this integer.
_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_COPY_AGAIN = "Copy it again from the training machine, or re-run training with --c to rewrite it."
#: Opcodes torch.save never writes that reach globals or classes (the extension registry, protocol-0 classes).
_REFUSED_OPCODES = frozenset({"EXT1", "EXT2", "EXT4", "INST", "OBJ"})
#: An expanded tensor (stride 0) is copied in full: refuse copies beyond this size that the storage does not hold.
_MAX_EXPANDED_BYTES = 1 << 30
#: torch dtypes and storage classes without a numpy equivalent (named in a clearer error than "refused").
_UNSUPPORTED_TORCH_TYPE = re.compile(r"(float8_|float4_|bits|qint|quint|complex32|chalf)|\w*Storage$")


@dataclass(frozen=True)
class TensorPlaceholder:
    """A tensor that was not read (its top-level key was not in ``tensor_keys``): torch's dtype name and shape."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Dtype:
    name: str  # torch's name ("float32", "bfloat16", ...)
    code: str  # numpy type code of the stored elements (bfloat16: "u2", widened to float32 after reading)


_DTYPES = {dtype.name: dtype for dtype in (
    _Dtype("float64", "f8"), _Dtype("float32", "f4"), _Dtype("float16", "f2"), _Dtype("bfloat16", "u2"),
    _Dtype("int64", "i8"), _Dtype("int32", "i4"), _Dtype("int16", "i2"), _Dtype("int8", "i1"),
    _Dtype("uint64", "u8"), _Dtype("uint32", "u4"), _Dtype("uint16", "u2"), _Dtype("uint8", "u1"),
    _Dtype("bool", "?"), _Dtype("complex64", "c8"), _Dtype("complex128", "c16"),
)}
#: torch's legacy typed storage classes (``GLOBAL 'torch FloatStorage'``) -> dtype name.
_STORAGE_CLASSES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}


@dataclass(frozen=True, slots=True, eq=False)
class _Storage:
    key: str
    nbytes: int
    dtype: _Dtype


@dataclass(frozen=True, slots=True, eq=False)
class _LazyTensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: _Dtype
    neg: bool = False
    conj: bool = False


class _MalformedError(ValueError):
    """A record of data.pkl does not have the shape torch writes (reported as an unreadable file)."""


def _unreadable(path: Path, detail: str) -> ModelFolderError:
    return ModelFolderError(f"Checkpoint {path} is unreadable or truncated ({detail}). {_COPY_AGAIN}")


def _refused(path: Path, found: str) -> ModelFolderError:
    return ModelFolderError(
        f"Checkpoint {path} refers to code or objects that a model checkpoint never needs, so it was not loaded "
        f"(loading it could run arbitrary code). Found: {found}"
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    if isinstance(err, _MalformedError):
        return text
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _read_record(archive: zipfile.ZipFile, name: str) -> bytes:
    """The record's bytes, CRC-checked unless its CRC is 0: torch writes 0 when CRC-32 is switched off
    (``torch.serialization.set_crc32_options(False)``) and never checks CRCs when loading."""
    info = archive.getinfo(name)
    with archive.open(info) as stream:
        if info.CRC == 0:
            stream._expected_crc = None  # type: ignore[attr-defined]  # zipfile's check, skipped when None
        return stream.read()


def _ascii(value: object) -> str:
    if isinstance(value, bytes):  # pickles written by Python 2
        return value.decode("ascii")
    if isinstance(value, str):
        return value
    raise _MalformedError(f"expected a string in a storage record, found {type(value).__name__}")


def _dims(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(type(n) is int and n >= 0 for n in value):
        raise _MalformedError(f"malformed tensor {what}: {value!r:.80}")
    return tuple(value)


class _CheckpointUnpickler(pickle.Unpickler):
    """Resolves only the allow-list; tensors become :class:`_LazyTensor` records (no storage is read here)."""

    def __init__(self, data: bytes, path: Path) -> None:
        super().__init__(io.BytesIO(data))
        self._path = path
        self.storages: dict[str, _Storage] = {}
        # bound methods, not module functions: a crafted BUILD cannot set attributes on them
        self._globals: dict[GlobalKey, Any] = {
            **NUMPY_GLOBALS,
            ("collections", "OrderedDict"): OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor_v2,
            ("torch._utils", "_rebuild_tensor_v3"): self._rebuild_tensor_v3,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): self._rebuild_parameter,
            ("torch", "device"): self._device,
            ("torch", "Size"): tuple,
            ("torch", "UntypedStorage"): _DTYPES["uint8"],
            ("torch.storage", "UntypedStorage"): _DTYPES["uint8"],
            ("_codecs", "encode"): self._encode,
        }

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names, as protocol-2 pickles write them ("__builtin__.eval"), read as Python 3 ones
        module, name = _compat_pickle.NAME_MAPPING.get(
            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
        if (module, name) in self._globals:
            return self._globals[(module, name)]
        if module == "torch" and name in _STORAGE_CLASSES:
            return _DTYPES[_STORAGE_CLASSES[name]]
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        if module == "torch" and _UNSUPPORTED_TORCH_TYPE.match(name):
            raise ModelFolderError(
                f"Checkpoint {self._path} holds tensors of type torch.{name}, which have no numpy equivalent and "
                f"cannot be read without torch. Convert them (e.g. to float32) and save the checkpoint again."
            )
        raise _refused(self._path, f"GLOBAL '{module}.{name}'")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and _ascii(pid[0]) == "storage"):
            raise _MalformedError(f"unexpected persistent id {pid!r:.80}")
        _, dtype, key, _location, numel = pid
        if not isinstance(dtype, _Dtype) or type(numel) is not int or numel < 0:
            raise _MalformedError(f"malformed storage record {pid!r:.80}")
        key = _ascii(key)
        nbytes = numel * np.dtype(dtype.code).itemsize
        storage = self.storages.setdefault(key, _Storage(key, nbytes, dtype))
        if storage.nbytes != nbytes:
            raise _MalformedError(f"storage {key} is recorded with two different sizes")
        return storage

    def _rebuild_tensor_v2(self, storage: _Storage, offset: int, size: Any, stride: Any, requires_grad: bool,
                           backward_hooks: Any, metadata: dict[str, bool] | None = None) -> _LazyTensor:
        if not isinstance(storage, _Storage):
            raise _MalformedError(f"_rebuild_tensor_v2 expects a storage, found {type(storage).__name__}")
        return self._tensor(storage, offset, size, stride, storage.dtype, metadata)

    def _rebuild_tensor_v3(self, storage: _Storage, offset: int, size: Any, stride: Any, requires_grad: bool,
                           backward_hooks: Any, dtype: _Dtype, metadata: dict[str, bool] | None = None) -> _LazyTensor:
        if not isinstance(storage, _Storage) or not isinstance(dtype, _Dtype):
            raise _MalformedError("_rebuild_tensor_v3 expects a storage and a dtype")
        return self._tensor(storage, offset, size, stride, dtype, metadata)

    @staticmethod
    def _tensor(storage: _Storage, offset: Any, size: Any, stride: Any, dtype: _Dtype,
                metadata: dict[str, bool] | None) -> _LazyTensor:
        shape, strides = _dims(size, "size"), _dims(stride, "stride")
        if type(offset) is not int or offset < 0 or len(shape) != len(strides):
            raise _MalformedError(f"malformed tensor record (offset {offset!r:.20}, size {shape}, stride {strides})")
        if metadata is not None and not isinstance(metadata, dict):
            raise _MalformedError(f"malformed tensor metadata {metadata!r:.80}")
        flags = metadata or {}
        return _LazyTensor(storage, offset, shape, strides, dtype, bool(flags.get("neg")), bool(flags.get("conj")))

    @staticmethod
    def _rebuild_parameter(data: _LazyTensor, requires_grad: bool, backward_hooks: Any, *state: Any) -> _LazyTensor:
        if not isinstance(data, _LazyTensor):
            raise _MalformedError(f"_rebuild_parameter expects a tensor, found {type(data).__name__}")
        return data  # a Parameter is its data; requires_grad, hooks and state do not matter for inference

    @staticmethod
    def _device(kind: str, index: int | None = None) -> str:
        if not isinstance(kind, str) or not (index is None or type(index) is int):
            raise _MalformedError(f"malformed torch.device({kind!r:.40}, {index!r:.20})")
        return kind if index is None else f"{kind}:{index}"

    @staticmethod
    def _encode(text: str, encoding: str = "utf-8") -> bytes:
        """``_codecs.encode`` as protocol-2 pickles use it for bytes (numpy scalars): latin-1 only."""
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise _MalformedError("_codecs.encode is accepted only for latin-1 text")
        return text.encode("latin-1")


class _StorageReader:
    """Reads storages from the zip on demand (each at most once) and turns lazy tensors into arrays."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, byteorder: str, path: Path) -> None:
        self._archive, self._prefix, self._path = archive, prefix, path
        self._order: Literal["<", ">"] = "<" if byteorder == "little" else ">"
        self._cache: dict[str, memoryview] = {}

    def storage_bytes(self, storage: _Storage) -> memoryview:
        if storage.key not in self._cache:
            name = f"{self._prefix}/data/{storage.key}"
            try:
                data = _read_record(self._archive, name)
            except KeyError:
                raise _unreadable(self._path, f"the storage record {name} is missing") from None
            if len(data) < storage.nbytes:
                raise _unreadable(self._path, f"the storage record {name} has {len(data)} bytes, "
                                              f"{storage.nbytes} expected")
            self._cache[storage.key] = memoryview(data)[:storage.nbytes]
        return self._cache[storage.key]

    def array(self, tensor: _LazyTensor) -> np.ndarray:
        """A contiguous, writable copy equal to ``tensor.numpy()`` (bfloat16 as float32)."""
        stored = np.dtype(tensor.dtype.code).newbyteorder(self._order)
        native = stored.newbyteorder("=")
        if 0 in tensor.size:
            array = np.zeros(tensor.size, dtype=native)
        else:
            data = self.storage_bytes(tensor.storage)
            count = len(data) // stored.itemsize
            last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride))
            if last >= count:
                raise _unreadable(self._path, f"a tensor of shape {tensor.size} reaches element {last} of a "
                                              f"storage of {count} elements")
            numel = math.prod(tensor.size)
            if numel > count and numel * stored.itemsize > _MAX_EXPANDED_BYTES:
                raise _unreadable(self._path, f"a tensor of shape {tensor.size} expands a storage of {count} "
                                              f"elements beyond {_MAX_EXPANDED_BYTES >> 20} MiB")
            base = np.frombuffer(data, dtype=stored, count=count)[tensor.offset:]
            view = np.lib.stride_tricks.as_strided(
                base, shape=tensor.size, strides=[s * stored.itemsize for s in tensor.stride], writeable=False)
            array = np.array(view, dtype=native, order="C", copy=True)
        if tensor.dtype.name == "bfloat16":  # the high 16 bits of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        if tensor.neg:
            array = np.negative(array)
        if tensor.conj:
            array = np.conjugate(array)
        return array


def _placeholder(tensor: _LazyTensor) -> TensorPlaceholder:
    return TensorPlaceholder(tensor.dtype.name, tensor.size)


def _whole(storage: _Storage) -> _LazyTensor:
    """A storage pickled on its own (not through a tensor): one flat tensor over all of it."""
    return _LazyTensor(storage, 0, (storage.nbytes // np.dtype(storage.dtype.code).itemsize,), (1,), storage.dtype)


def _resolve(value: Any, convert: Callable[[_LazyTensor], Any], done: dict[int, tuple[Any, Any]]) -> Any:
    """Replace every lazy tensor in ``value`` by ``convert(tensor)``: dicts and lists in place (so shared and
    self-referencing containers stay so), tuples and sets rebuilt."""
    if isinstance(value, (_Storage, _LazyTensor, dict, list, tuple, set, frozenset)):
        if id(value) in done:
            return done[id(value)][1]
    else:
        return value
    if isinstance(value, (dict, list)):
        done[id(value)] = (value, value)
        for key, item in (value.items() if isinstance(value, dict) else enumerate(value)):
            value[key] = _resolve(item, convert, done)
        return value
    if isinstance(value, _Storage):
        result: Any = convert(_whole(value))
    elif isinstance(value, _LazyTensor):
        result = convert(value)
    else:
        result = type(value)(_resolve(item, convert, done) for item in value)
    done[id(value)] = (value, result)  # keeps ``value`` alive, so that its id is not reused
    return result


def _open_archive(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise ModelFolderError(f"Checkpoint {path} does not exist.")
    try:
        with path.open("rb") as stream:
            head = stream.read(64)
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        if _LEGACY_MAGIC in head:
            raise ModelFolderError(
                f"Checkpoint {path} is saved in PyTorch's legacy format (PyTorch < 1.6), which cannot be read "
                f"without torch. Load it with torch and re-save it with torch.save in PyTorch >= 1.6."
            ) from None
        raise ModelFolderError(
            f"Checkpoint {path} is not a valid PyTorch checkpoint; it is unreadable or truncated. {_COPY_AGAIN}"
        ) from None
    except (OSError, EOFError, ValueError, RuntimeError) as err:  # damaged directory: bad names, versions
        raise _unreadable(path, _first_line(err)) from err


def _records(archive: zipfile.ZipFile, path: Path) -> tuple[str, str]:
    """The archive's folder name (the file's stem, or ``archive`` when saved to a buffer) and its byte order."""
    pickles = [name for name in archive.namelist() if name.count("/") == 1 and name.endswith("/data.pkl")]
    if not pickles:
        raise ModelFolderError(
            f"Checkpoint {path} is a zip without a data.pkl record, so it is not a PyTorch checkpoint; it is "
            f"unreadable or truncated. {_COPY_AGAIN}"
        )
    prefix = pickles[0].split("/")[0]
    try:
        byteorder = _read_record(archive, f"{prefix}/byteorder").decode("ascii", "replace").strip()
    except KeyError:  # written before torch 2.0: always little-endian
        byteorder = "little"
    if byteorder not in ("little", "big"):
        raise _unreadable(path, f"unknown byte order {byteorder!r:.20}")
    return prefix, byteorder


def _check_opcodes(data: bytes, path: Path) -> None:
    """Walk the opcodes without running them: the C unpickler allocates what a length or memo index declares
    before it reads, so a crafted count of 2**60 must be refused here. Protocol-5 buffers and the extension
    registry, which torch never writes, are refused too."""
    for opcode, argument, position in pickletools.genops(data):  # ValueError for lengths beyond the data
        if opcode.proto > 4 or opcode.name in _REFUSED_OPCODES:
            raise _refused(path, f"pickle opcode {opcode.name}")
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and isinstance(argument, int) and argument > (position or 0):
            raise _MalformedError(f"memo index {argument} at byte {position}")


def _unpickle(archive: zipfile.ZipFile, prefix: str, path: Path) -> Any:
    data = _read_record(archive, f"{prefix}/data.pkl")
    try:
        _check_opcodes(data, path)
        return _CheckpointUnpickler(data, path).load()
    except ModelFolderError:
        raise
    except (TypeError, AttributeError) as err:  # a REDUCE/BUILD of something that no allowed call accepts
        raise _refused(path, f"an unexpected call or object ({_first_line(err)})") from err
    except Exception as err:  # truncated pickle, bad opcode, too deep
        raise _unreadable(path, f"data.pkl: {_first_line(err)}") from err


def load_checkpoint_without_torch(
    path: str | Path, tensor_keys: Collection[str] | None = ("network_weights",)
) -> dict[str, Any]:
    """Read a checkpoint written by ``torch.save`` (ours or nnU-Net's) without torch and without running code.

    Tensors under the top-level keys in ``tensor_keys`` (all of them if ``None``) become contiguous numpy arrays
    (bfloat16 as float32); the others become :class:`TensorPlaceholder` and their bytes are not read (the
    optimizer's momentum buffers are as large as the weights). ``torch.device`` becomes a string (``"cuda:0"``).
    Raises :class:`ModelFolderError` for missing, truncated, legacy-format or unsafe files and for objects that
    are not a dict with ``network_weights``.
    """
    path = Path(path)
    if isinstance(tensor_keys, str):  # one key, not its characters
        tensor_keys = (tensor_keys,)
    archive = _open_archive(path)
    try:
        with archive:
            prefix, byteorder = _records(archive, path)
            checkpoint = _unpickle(archive, prefix, path)
            if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
                raise ModelFolderError(
                    f"{path} is not an nnU-Net/AutoSeg checkpoint: expected a dict with 'network_weights', "
                    f"'init_args', 'trainer_name', found {type(checkpoint).__name__}"
                    + (f" with keys {sorted(map(str, checkpoint))[:8]}" if isinstance(checkpoint, dict) else "")
                    + "."
                )
            reader = _StorageReader(archive, prefix, byteorder, path)
            done: dict[bool, dict[int, tuple[Any, Any]]] = {True: {}, False: {}}
            for key in list(checkpoint):
                wanted = tensor_keys is None or key in tensor_keys
                checkpoint[key] = _resolve(checkpoint[key], reader.array if wanted else _placeholder, done[wanted])
            return checkpoint
    except ModelFolderError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError, TypeError) as err:
        raise _unreadable(path, _first_line(err)) from err  # bad CRC, cut-off record, arrays inside a set
