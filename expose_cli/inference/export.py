"""Mesh and parameter files: OBJ, PLY (binary), GLB (glTF 2.0 binary), NPZ, JSON. All atomic.

:data:`FORMATS` is the table of output formats (``--format`` name -> writer).

Axes: the network's meshes are in the camera frame of OpenCV (x right, y down, z forward, away
from the camera). OBJ, PLY and NPZ keep that frame. glTF is +Y up with the viewer on +Z, so GLB
files get the vertices rotated 180 degrees about x (``(x, y, z) -> (x, -y, -z)``, a rotation: the
triangles' winding and the normals stay outward).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from expose_cli.utils.atomic import atomic_path

CAMERA_TO_GLTF = np.diag([1.0, -1.0, -1.0])  # 180 degrees about x: OpenCV camera frame -> glTF (+Y up, +Z to the viewer)


_FACE_TEXT: dict[bytes, str] = {}  # faces.tobytes() -> their "f a b c" lines (the same for every mesh)


def _face_lines(faces: np.ndarray) -> str:
    f = np.ascontiguousarray(faces, dtype=np.int64)
    key = f.tobytes()
    text = _FACE_TEXT.get(key)
    if text is None:
        text = ("f %d %d %d\n" * len(f)) % tuple((f + 1).ravel().tolist())
        if len(_FACE_TEXT) >= 8:
            _FACE_TEXT.clear()
        _FACE_TEXT[key] = text
    return text


def write_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Wavefront OBJ: ``v x y z`` lines (metres) then 1-based ``f a b c``. One formatting call for
    all vertices; the face lines are formatted once per face array and reused."""
    v = np.asarray(vertices, dtype=np.float64)
    vertex_lines = ("v %.6f %.6f %.6f\n" * len(v)) % tuple(v.ravel().tolist())
    with atomic_path(path) as tmp:
        tmp.write_text("# expose: SMPL-X mesh, metres\n" + vertex_lines + _face_lines(faces))


def write_ply(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Binary little-endian PLY: float32 x, y, z; faces as uchar count + int32 indices."""
    v = np.asarray(vertices, dtype="<f4")
    f = np.asarray(faces, dtype="<i4")
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment expose: metres\n"
        f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")
    face_rec = np.zeros(len(f), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face_rec["n"] = 3
    face_rec["idx"] = f
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + v.tobytes() + face_rec.tobytes())


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a PLY written by :func:`write_ply` (binary little-endian, triangles)."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    n_v = int(next(line.split()[-1] for line in header if line.startswith("element vertex")))
    n_f = int(next(line.split()[-1] for line in header if line.startswith("element face")))
    v = np.frombuffer(data, dtype="<f4", count=n_v * 3, offset=end).reshape(n_v, 3)
    rec = np.frombuffer(data, dtype=[("n", "u1"), ("idx", "<i4", (3,))], count=n_f, offset=end + n_v * 12)
    return v.copy(), rec["idx"].copy()


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals: each face's cross product (twice its area along its
    normal) summed at its three corners, then normalised.

    The sums are histograms (``np.bincount``) over the corners listed first corner of every face,
    then second, then third: each vertex adds its faces' terms in the same order as one
    ``np.add.at`` per corner would, so the float64 sums are the same to the bit, ~10x faster."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.intp)
    tri = v[f]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    corners = f.T.reshape(-1)  # corner 0 of every face, then corner 1, then corner 2
    n = np.stack([np.bincount(corners, weights=np.tile(fn[:, c], 3), minlength=len(v)) for c in range(3)], axis=1)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.where(norm > 0, norm, 1.0)


def write_glb(path: str | Path, vertices: np.ndarray, faces: np.ndarray, from_camera_frame: bool = True) -> None:
    """glTF 2.0 binary with one triangle mesh: POSITION, NORMAL (float32) and uint32 indices.

    ``from_camera_frame``: ``vertices`` are in OpenCV's camera frame (y down, z forward) and are
    rotated into glTF's (+Y up, +Z toward the viewer) with :data:`CAMERA_TO_GLTF`.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if from_camera_frame:
        v = v @ CAMERA_TO_GLTF.T
    v = v.astype("<f4")
    n = vertex_normals(v, np.asarray(faces)).astype("<f4")
    idx = np.asarray(faces, dtype="<u4").reshape(-1)
    blobs = [v.tobytes(), n.tobytes(), idx.tobytes()]
    offsets, total = [], 0
    for b in blobs:
        offsets.append(total)
        total += len(b) + (-len(b)) % 4
    binary = b"".join(b + b"\0" * ((-len(b)) % 4) for b in blobs)
    gltf = {
        "asset": {"version": "2.0", "generator": "expose"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1}, "indices": 2}]}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": offsets[0], "byteLength": len(blobs[0]), "target": 34962},
            {"buffer": 0, "byteOffset": offsets[1], "byteLength": len(blobs[1]), "target": 34962},
            {"buffer": 0, "byteOffset": offsets[2], "byteLength": len(blobs[2]), "target": 34963},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(v), "type": "VEC3",
             "min": v.min(0).tolist(), "max": v.max(0).tolist()},
            {"bufferView": 1, "componentType": 5126, "count": len(n), "type": "VEC3"},
            {"bufferView": 2, "componentType": 5125, "count": len(idx), "type": "SCALAR"},
        ],
    }
    js = json.dumps(gltf, separators=(",", ":")).encode()
    js += b" " * ((-len(js)) % 4)
    body = struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(binary), 0x004E4942) + binary
    with atomic_path(path) as tmp:
        tmp.write_bytes(struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body)


def read_glb(path: str | Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """Parse a GLB written by :func:`write_glb`: ``(json, vertices, faces)``, vertices as stored
    (glTF axes; multiply by :data:`CAMERA_TO_GLTF` to get back the camera frame)."""
    data = Path(path).read_bytes()
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != 0x46546C67 or version != 2 or length != len(data):
        raise ValueError("not a glTF 2.0 binary")
    jlen, jtype = struct.unpack_from("<II", data, 12)
    gltf = json.loads(data[20:20 + jlen])
    blen, btype = struct.unpack_from("<II", data, 20 + jlen)
    binary = data[28 + jlen:28 + jlen + blen]
    views = gltf["bufferViews"]
    acc = gltf["accessors"]
    v = np.frombuffer(binary, "<f4", acc[0]["count"] * 3, views[0]["byteOffset"]).reshape(-1, 3)
    f = np.frombuffer(binary, "<u4", acc[2]["count"], views[2]["byteOffset"]).reshape(-1, 3)
    return gltf, v, f


def write_npz(path: str | Path, arrays: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})


def write_json(path: str | Path, obj: dict) -> None:
    def default(o):
        if hasattr(o, "tolist"):
            return o.tolist()
        raise TypeError(type(o).__name__)

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=default) + "\n")


#: One person's file in one format: ``(path, arrays, vertices)``, ``vertices`` the mesh to write
#: (``arrays["vertices_camera"]`` with ``--camera-space``, else ``arrays["vertices"]``, metres).
Writer = Callable[[Path, dict, np.ndarray], None]


def _json_parameters(path: Path, arrays: dict, vertices: np.ndarray) -> None:
    """Every array but the mesh (vertices and faces) as JSON lists."""
    write_json(path, {k: v for k, v in arrays.items() if k not in ("vertices", "vertices_camera", "faces")})


#: The output formats, ``--format NAME`` -> its writer (the file is ``person_NN.NAME``): the one table
#: `expose infer`, `expose fit` and their ``--format`` checks read.
FORMATS: dict[str, Writer] = {
    "obj": lambda path, arrays, vertices: write_obj(path, vertices, arrays["faces"]),
    "ply": lambda path, arrays, vertices: write_ply(path, vertices, arrays["faces"]),
    "glb": lambda path, arrays, vertices: write_glb(path, vertices, arrays["faces"]),  # rotated into glTF's axes
    "npz": lambda path, arrays, vertices: write_npz(path, arrays),
    "json": _json_parameters,
}


def write_person(stem: str | Path, arrays: dict, formats: tuple[str, ...], camera_space: bool = False) -> list[str]:
    """One person's files ``stem.<fmt>`` for each of ``formats`` (atomic each, written by
    :data:`FORMATS`), as `expose infer` and `expose fit` write them: meshes of
    ``arrays["vertices_camera"]`` with ``camera_space``, else of ``arrays["vertices"]`` (metres)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    verts = arrays["vertices_camera"] if camera_space else arrays["vertices"]
    files = []
    for fmt in formats:
        writer = FORMATS.get(fmt)
        if writer is None:
            raise ValueError(f"unknown output format {fmt!r}; known: {', '.join(FORMATS)}")
        path = stem.with_suffix(f".{fmt}")
        writer(path, arrays, verts)
        files.append(str(path))
    return files
