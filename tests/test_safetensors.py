"""The .safetensors reader: hand-built files, a round trip, and one clear error per damage."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from expose_cli.errors import ExposeError
from expose_cli.io.safetensors import read_header, read_safetensors, write_safetensors


def _file(path, header: dict, data: bytes, header_len: int | None = None):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data)
    return path


def test_reads_a_hand_built_file(tmp_path):
    # Bytes written by hand in the documented layout: 2x2 float32, an int64 scalar, a bf16 vector.
    data = struct.pack("<4f", 1.5, -2.0, 0.25, 8.0) + struct.pack("<q", -7) + bytes([0x80, 0x3F, 0x00, 0xC0])
    header = {"__metadata__": {"format": "pt"},
              "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "n": {"dtype": "I64", "shape": [], "data_offsets": [16, 24]},
              "b": {"dtype": "BF16", "shape": [2], "data_offsets": [24, 28]}}
    out = read_safetensors(_file(tmp_path / "a.safetensors", header, data))
    assert list(out) == ["w", "n", "b"]
    assert out["w"].dtype == torch.float32 and out["w"].tolist() == [[1.5, -2.0], [0.25, 8.0]]
    assert out["n"].shape == () and out["n"].item() == -7
    assert out["b"].dtype == torch.bfloat16 and out["b"].tolist() == [1.0, -2.0]  # 0x3F80, 0xC000


def test_round_trip_every_dtype(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {"f64": torch.randn(3, generator=g, dtype=torch.float64), "f16": torch.randn(2, 3, generator=g).half(),
               "i32": torch.arange(-3, 3, dtype=torch.int32), "u8": torch.tensor([0, 255], dtype=torch.uint8),
               "bool": torch.tensor([True, False, True]), "empty": torch.zeros(0, 4),
               "strided": torch.arange(12.0).reshape(3, 4).t()}
    path = write_safetensors(tmp_path / "r.safetensors", tensors, {"format": "pt"})
    assert struct.unpack("<Q", path.read_bytes()[:8])[0] % 8 == 0
    back = read_safetensors(path)
    assert list(back) == list(tensors)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t), name


@pytest.mark.parametrize(("header", "data", "header_len", "message"), [
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, None, "outside the data area"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None, r"8 bytes for shape \[3\]"),
    ({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, None, "unknown dtype 'Q4'"),
    ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, None, "bad shape"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8, None, "outside the data area"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, b"\0" * 8, None, "bad data_offsets"),
    ({"w": 1}, b"", 10 ** 9, "does not fit the file"),
])
def test_damaged_files_are_one_clear_error(tmp_path, header, data, header_len, message):
    path = _file(tmp_path / "bad.safetensors", header, data, header_len)
    with pytest.raises(ExposeError, match=message) as info:
        read_safetensors(path)
    assert info.value.path == path and str(path) in info.value.message


def test_not_json_and_too_short(tmp_path):
    short = tmp_path / "s.safetensors"
    short.write_bytes(b"\x01\x02")
    with pytest.raises(ExposeError, match="shorter than the 8-byte header length"):
        read_header(short)
    junk = tmp_path / "j.safetensors"
    junk.write_bytes(struct.pack("<Q", 4) + b"\xff{[x")
    with pytest.raises(ExposeError, match="not JSON"):
        read_header(junk)
