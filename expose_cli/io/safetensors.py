"""Reading (and writing) ``.safetensors`` files without the ``safetensors`` package.

The format holds no code, so it is safe by construction once its header is checked: an 8-byte
little-endian header length N, N bytes of JSON mapping each tensor name to
``{"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}`` (offsets relative to the byte
after the header; an optional ``"__metadata__"`` entry maps strings to strings), then the raw
little-endian tensor bytes. :func:`read_safetensors` checks every entry (known dtype, a shape of
non-negative integers, offsets inside the file and exactly ``numel * itemsize`` long) before it
reads a byte of data, and raises :class:`ExposeError` naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import torch

from expose_cli.errors import ExposeError
from expose_cli.utils.atomic import atomic_path

#: safetensors dtype names -> torch dtypes (the ones PyTorch checkpoints use).
DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in DTYPES.items()}
#: A header larger than this is refused (the reference implementation's limit).
MAX_HEADER = 100_000_000
_HINT = "the file is damaged or not a .safetensors file; download it again (`expose fetch ... --overwrite`)"


def _bad(path: Path, problem: str) -> ExposeError:
    return ExposeError(f"not a valid .safetensors file: {problem}", hint=_HINT, path=path)


def read_header(path: str | Path) -> tuple[dict[str, dict], int]:
    """The checked header of ``path``: ``({name: {"dtype", "shape", "data_offsets"}}, data_start)``
    where ``data_start`` is the file offset of the data area. ``__metadata__`` is left out."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise _bad(path, f"{size} bytes, shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER, size - 8):
                raise _bad(path, f"header length {n} does not fit the file ({size} bytes)")
            raw = fh.read(n)
    except OSError as exc:
        raise ExposeError(f"cannot read the file: {exc}", path=path) from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"the header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise _bad(path, "the header is not a JSON object")
    header.pop("__metadata__", None)
    data_len = size - 8 - n
    for name, entry in header.items():
        _check_entry(path, name, entry, data_len)
    return header, 8 + n


def _check_entry(path: Path, name: str, entry: object, data_len: int) -> None:
    """One header entry: known dtype, shape of ints >= 0, offsets in the data area and as long as
    the tensor."""
    if not isinstance(entry, dict) or entry.get("dtype") not in DTYPES:
        dtype = entry.get("dtype") if isinstance(entry, dict) else entry
        raise _bad(path, f"tensor {name!r} has an unknown dtype {dtype!r}")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _bad(path, f"tensor {name!r} has a bad shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        raise _bad(path, f"tensor {name!r} has bad data_offsets {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_len:
        raise _bad(path, f"tensor {name!r}: bytes {begin}..{end} lie outside the data area ({data_len} bytes)")
    itemsize = torch.empty((), dtype=DTYPES[entry["dtype"]]).element_size()
    if end - begin != math.prod(shape) * itemsize:
        raise _bad(path, f"tensor {name!r}: {end - begin} bytes for shape {shape} of {entry['dtype']}")


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file, on the CPU, in the header's order (checked first:
    see the module docstring)."""
    path = Path(path)
    header, start = read_header(path)
    out = {}
    with open(path, "rb") as fh:
        for name, entry in header.items():
            begin, end = entry["data_offsets"]
            buf = torch.empty(end - begin, dtype=torch.uint8)
            fh.seek(start + begin)
            if fh.readinto(memoryview(buf.numpy())) != end - begin:
                raise _bad(path, f"tensor {name!r} is cut short")
            tensor = buf.view(DTYPES[entry["dtype"]]) if end > begin else torch.empty(0, dtype=DTYPES[entry["dtype"]])
            if sys.byteorder == "big":
                tensor = _swap_bytes(tensor)
            out[name] = tensor.reshape(entry["shape"])
    return out


def _swap_bytes(tensor: torch.Tensor) -> torch.Tensor:
    """Little-endian file bytes -> native order on a big-endian machine."""
    size = tensor.element_size()
    if size == 1:
        return tensor
    raw = tensor.view(torch.uint8).reshape(-1, size).flip(1).contiguous()
    return raw.view(tensor.dtype).reshape(-1)


def write_safetensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` as a ``.safetensors`` file (atomically): contiguous, in the given order."""
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    blobs, offset = [], 0
    for name, tensor in tensors.items():
        if tensor.dtype not in _NAMES:
            raise ValueError(f"{name}: dtype {tensor.dtype} has no safetensors name")
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        blob = (_swap_bytes(flat) if sys.byteorder == "big" else flat).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": _NAMES[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the data area starts 8-byte aligned, as the reference writer does
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for blob in blobs:
            fh.write(blob)
    return Path(path)
