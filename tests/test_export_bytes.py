"""The mesh writers' bytes: PLY and GLB read back with struct, independently of export.py, on a
tetrahedron whose normals are worked out by hand; and the files of an SMPL-X-sized mesh equal, to
the byte, those of the writers before they were vectorised (their sha256, recorded from that code:
vertex normals summed with one ``np.add.at`` per triangle corner)."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np

from expose_cli.inference import export

# a right tetrahedron (OpenCV camera frame, metres), faces wound outward
TETRA_V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
TETRA_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int64)


def test_ply_bytes_of_a_tetrahedron(tmp_path):
    export.write_ply(tmp_path / "t.ply", TETRA_V, TETRA_F)
    header = (b"ply\nformat binary_little_endian 1.0\ncomment expose: metres\nelement vertex 4\n"
              b"property float x\nproperty float y\nproperty float z\nelement face 4\n"
              b"property list uchar int vertex_indices\nend_header\n")
    body = b"".join(struct.pack("<3f", *v) for v in TETRA_V.tolist())
    body += b"".join(struct.pack("<B3i", 3, *f) for f in TETRA_F.tolist())
    assert (tmp_path / "t.ply").read_bytes() == header + body


def test_glb_of_a_tetrahedron_read_back_with_struct(tmp_path):
    export.write_glb(tmp_path / "t.glb", TETRA_V, TETRA_F)
    data = (tmp_path / "t.glb").read_bytes()
    assert struct.unpack_from("<III", data, 0) == (0x46546C67, 2, len(data))
    jlen, jtype = struct.unpack_from("<II", data, 12)
    assert jtype == 0x4E4F534A and jlen % 4 == 0
    gltf = json.loads(data[20:20 + jlen])
    blen, btype = struct.unpack_from("<II", data, 20 + jlen)
    assert btype == 0x004E4942 and 28 + jlen + blen == len(data)
    binary = data[28 + jlen:]
    views = gltf["bufferViews"]
    pos = struct.unpack_from("<12f", binary, views[0]["byteOffset"])
    nrm = struct.unpack_from("<12f", binary, views[1]["byteOffset"])
    idx = struct.unpack_from("<12I", binary, views[2]["byteOffset"])
    # glTF axes: (x, y, z) -> (x, -y, -z)
    assert pos == (0, 0, 0, 1, 0, 0, 0, -1, 0, 0, 0, -1)
    assert idx == tuple(TETRA_F.ravel().tolist())
    # by hand: the face normals (twice the areas) in the camera frame are (0,0,-1), (0,-1,0), (-1,0,0)
    # and (1,1,1); vertex 0 touches the first three: (-1,-1,-1); vertex 1: (1,0,0); vertex 2: (0,1,0);
    # vertex 3: (0,0,1). Rotated into glTF's axes and normalised:
    s = np.float32(1 / np.sqrt(3.0))
    assert nrm == (-s, s, s, 1, 0, 0, 0, -1, 0, 0, 0, -1)
    acc = gltf["accessors"]
    assert acc[0]["min"] == [0, -1, -1] and acc[0]["max"] == [1, 0, 0] and acc[2]["count"] == 12


def test_smplx_sized_mesh_bytes_as_before(tmp_path):
    """sha256 of the files the writers gave before vectorising (10475 vertices, 20908 random faces:
    vertices shared by many faces, so the order of the normal sums matters to the last bit)."""
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(10475, 3)).astype(np.float32)
    faces = rng.integers(0, 10475, size=(20908, 3))
    export.write_glb(tmp_path / "m.glb", vertices, faces)
    export.write_ply(tmp_path / "m.ply", vertices, faces)
    digest = {ext: hashlib.sha256((tmp_path / f"m.{ext}").read_bytes()).hexdigest() for ext in ("glb", "ply")}
    assert digest == {"glb": "e20680053b61ac705288e071c280b173fee741951705b4c6ac215cea990a455a",
                      "ply": "78d8ecd38ff5f4ec4b2583d04f0951847ce9aaafd5752eb91610dd28a641f21e"}
