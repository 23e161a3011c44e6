"""A small PLY vertex reader (ascii and binary little/big endian) for ground-truth meshes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from expose_cli.errors import ExposeError

_TYPES = {"float": "f4", "float32": "f4", "double": "f8", "float64": "f8", "uchar": "u1", "uint8": "u1",
          "char": "i1", "int8": "i1", "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
          "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4"}


def read_ply_vertices(path: str | Path) -> np.ndarray:
    """The ``x, y, z`` of every vertex of a PLY file as ``[N, 3]`` float64."""
    path = Path(path)
    data = path.read_bytes()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise ExposeError("not a PLY file", path=path)
    body = data.index(b"\n", end) + 1
    header = data[:body].decode("ascii", "replace").splitlines()
    fmt = next((line.split()[1] for line in header if line.startswith("format")), "")
    count, props, in_vertex = 0, [], False
    for line in header:
        parts = line.split()
        if parts[:2] == ["element", "vertex"]:
            count, in_vertex = int(parts[2]), True
        elif parts[:1] == ["element"]:
            in_vertex = False
        elif in_vertex and parts[:1] == ["property"]:
            if parts[1] == "list":
                raise ExposeError("list properties on vertices are not supported", path=path)
            props.append((parts[2], _TYPES[parts[1]]))
    names = [p[0] for p in props]
    if not {"x", "y", "z"} <= set(names):
        raise ExposeError("PLY vertices lack x, y, z", path=path)
    if fmt == "ascii":
        lines = data[body:].decode("ascii").split("\n")[:count]
        arr = np.array([[float(v) for v in line.split()[: len(props)]] for line in lines])
        return arr[:, [names.index(c) for c in "xyz"]]
    order = "<" if fmt == "binary_little_endian" else ">"
    dtype = np.dtype([(n, order + t) for n, t in props])
    if len(data) - body < dtype.itemsize * count:
        raise ExposeError(f"PLY truncated: {count} vertices announced", path=path)
    verts = np.frombuffer(data, dtype=dtype, count=count, offset=body)
    return np.stack([verts["x"], verts["y"], verts["z"]], axis=1).astype(np.float64)
