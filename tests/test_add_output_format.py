"""An output format added the documented way (docs/architecture.md, "How to add", "An output
format"): one writer in ``export.FORMATS`` and nothing else; `expose infer --format NAME` then
accepts it and writes ``person_NN.NAME`` beside the other formats."""

from __future__ import annotations

import json

import cv2
import numpy as np

from expose_cli.inference import export
from expose_cli.utils.atomic import atomic_path


def _write_xyz(path, arrays: dict, vertices: np.ndarray) -> None:
    """The toy format: one ``x y z`` line per vertex (metres)."""
    with atomic_path(path) as tmp:
        np.savetxt(tmp, np.asarray(vertices, dtype=np.float64), fmt="%.7f")


def _inputs(tmp_path):
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "p.jpg"), (rng.random((160, 200, 3)) * 255).astype(np.uint8))
    (tmp_path / "b.json").write_text(json.dumps({"p.jpg": [[30, 20, 150, 150]]}))
    return tmp_path / "p.jpg", tmp_path / "b.json"


def test_a_format_added_to_the_table_is_written_by_infer(infer_tree, tmp_path, run_cli, monkeypatch):
    image, boxes = _inputs(tmp_path)
    monkeypatch.setitem(export.FORMATS, "xyz", _write_xyz)
    out = tmp_path / "o"
    res = run_cli("--data-dir", infer_tree, "-q", "infer", image, "--out", out, "--boxes", boxes, "--backend", "torch",
                  "--format", "xyz,npz", "--camera-space")
    assert res.exit_code == 0, res.output
    npz = np.load(out / "p" / "person_00.npz")
    xyz = np.loadtxt(out / "p" / "person_00.xyz")
    # the writer got the mesh --camera-space asks for, as the built-in mesh formats do
    np.testing.assert_allclose(xyz, npz["vertices_camera"], atol=1e-6)
    files = json.loads((out / "p" / "result.json").read_text())["files"]
    assert [f.rsplit("/", 1)[-1] for f in files] == ["person_00.xyz", "person_00.npz"]


def test_a_format_not_in_the_table_is_refused(infer_tree, tmp_path, run_cli):
    image, boxes = _inputs(tmp_path)
    res = run_cli("--data-dir", infer_tree, "-q", "infer", image, "--out", tmp_path / "o", "--boxes", boxes,
                  "--format", "xyz")
    assert res.exit_code == 2 and "unknown --format xyz" in res.output  # bad usage, before any work
    assert not (tmp_path / "o" / "p").exists()
