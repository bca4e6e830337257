# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Safetensors files read and written one tensor at a time.

`safetensors.torch.save_file` needs every tensor of a file in memory and then copies them to bytes, so writing a
5 GB shard would cost about 10 GB. Here the header is written first (shapes and dtypes are known from the source
headers) and each tensor is then fetched with `safe_open`, written, and dropped: a conversion holds at most one
source shard's mapped pages plus one tensor.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from safetensors import safe_open
from transformers_llada_uni.released_layout_llada_uni import CheckpointError


# safetensors dtype names <-> torch dtypes (the ones torch can hold).
_ST_TO_TORCH = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
_TORCH_TO_ST = {v: k for k, v in _ST_TO_TORCH.items()}

# A header larger than this is not a safetensors file (the format caps it at 100 MB).
_MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    path: str
    offset: int = -1  # absolute byte offset of the data in `path` (-1: not a safetensors entry)

    @property
    def nbytes(self) -> int:
        return _numel(self.shape) * _itemsize(self.dtype)


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def st_dtype_name(dtype: torch.dtype) -> str:
    if dtype not in _TORCH_TO_ST:
        raise TypeError(f"dtype {dtype} cannot be stored in safetensors here; allowed: {sorted(map(str, _TORCH_TO_ST))}")
    return _TORCH_TO_ST[dtype]


def read_header(path: str | os.PathLike) -> dict[str, TensorInfo]:
    """Parse and check a safetensors header without loading any tensor.

    Raises `CheckpointError` when the file is not safetensors or is truncated (its tensors would reach past its end),
    so a broken shard is reported before anything is written.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    if size < 8:
        raise CheckpointError(f"{path}: {size} bytes, too short to be a safetensors file (truncated?).")
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > _MAX_HEADER_BYTES or 8 + header_len > size:
            raise CheckpointError(
                f"{path}: header length {header_len} does not fit in the file's {size} bytes: the file is truncated or "
                "not a safetensors file."
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable safetensors header ({err}).") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object.")
    data_len = size - 8 - header_len
    infos = {}
    end_max = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _ST_TO_TORCH[entry["dtype"]]
            shape = tuple(int(s) for s in entry["shape"])
            begin, end = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: malformed header entry for tensor {name!r}: {entry!r}.") from None
        if end - begin != _numel(shape) * _itemsize(dtype):
            raise CheckpointError(
                f"{path}: tensor {name!r} has shape {list(shape)} ({entry['dtype']}) but occupies {end - begin} bytes."
            )
        end_max = max(end_max, end)
        infos[name] = TensorInfo(name, dtype, shape, path, 8 + header_len + begin)
    if end_max > data_len:
        raise CheckpointError(
            f"{path}: truncated: its tensors need {end_max} data bytes but the file holds {data_len} "
            f"(file size {size} bytes). Download it again."
        )
    return infos


def write_streaming(
    path: str | os.PathLike,
    entries: Iterable[tuple[str, torch.dtype, tuple[int, ...], Callable[[], torch.Tensor]]],
    metadata: dict[str, str] | None = None,
    on_tensor: Callable[[int], None] | None = None,
) -> int:
    """Write a safetensors file from `(name, dtype, shape, fetch)` entries, calling `fetch()` for one tensor at a time.

    Returns the number of data bytes written. `on_tensor(nbytes)` is called after each tensor (progress bars).
    """
    entries = list(entries)
    header: dict[str, object] = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for name, dtype, shape, _ in entries:
        nbytes = _numel(shape) * _itemsize(dtype)
        header[name] = {"dtype": st_dtype_name(dtype), "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # The reference writer pads the header with spaces so the data starts 8-byte aligned.
    raw += b" " * ((8 - len(raw) % 8) % 8)
    try:
        _write_file(path, raw, entries, on_tensor)
    except OSError as err:
        # A full disk or a vanished folder: say which file could not be written.
        raise OSError(err.errno, f"cannot write {os.fspath(path)}: {err.strerror or err}") from None
    return offset


def _write_file(path, raw: bytes, entries, on_tensor) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, dtype, shape, fetch in entries:
            tensor = fetch()
            if tensor.dtype != dtype or tuple(tensor.shape) != tuple(shape):
                raise CheckpointError(
                    f"tensor {name!r}: got {tuple(tensor.shape)} {tensor.dtype}, expected {tuple(shape)} {dtype}."
                )
            data = tensor.detach().to("cpu").contiguous().reshape(-1)
            if data.numel():
                # Bytes straight from the tensor's storage: no second copy of the tensor.
                f.write(memoryview(data.view(torch.uint8).numpy()))
            if on_tensor is not None:
                on_tensor(data.numel() * data.element_size())
            del tensor, data
        f.flush()
        os.fsync(f.fileno())


def read_tensor(info: TensorInfo) -> torch.Tensor:
    """One tensor read with plain file I/O: unlike a memory map, nothing of the file stays resident afterwards, so
    comparing two files tensor by tensor holds two tensors, not two shards."""
    if info.offset < 0:
        raise ValueError(f"{info.name!r} has no safetensors offset.")
    buffer = torch.empty(info.nbytes, dtype=torch.uint8)
    with open(info.path, "rb") as f:
        f.seek(info.offset)
        read = f.readinto(memoryview(buffer.numpy())) if info.nbytes else 0
    if read != info.nbytes:
        raise CheckpointError(f"{info.path}: tensor {info.name!r} is cut short ({read} of {info.nbytes} bytes).")
    return buffer.view(info.dtype).reshape(info.shape)


class ShardReader:
    """Open source shards one at a time with `safe_open`; switching file closes the previous mapping."""

    def __init__(self):
        self._path = None
        self._handle = None

    def get(self, path: str, name: str) -> torch.Tensor:
        if path != self._path:
            self.close()
            self._handle = safe_open(path, framework="pt", device="cpu")
            self._path = path
        try:
            return self._handle.get_tensor(name)
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(f"{path}: cannot read tensor {name!r} ({err}).") from None

    def close(self) -> None:
        if self._handle is not None:
            # safe_open handles are context managers; leaving drops the memory map.
            self._handle.__exit__(None, None, None)
        self._handle = None
        self._path = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
