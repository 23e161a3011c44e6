"""`expose infer`: inputs, boxes, export formats, rendering, the end-to-end CLI, and the demo."""

from __future__ import annotations

import json
import struct

import cv2
import numpy as np
import pytest

from expose_cli.errors import ExposeError
from expose_cli.inference import boxes as B
from expose_cli.inference import export
from expose_cli.inference.inputs import discover_inputs, read_image
from expose_cli.inference.render import render_overlay
from expose_cli.testing.checkpoints import write_mmhuman3d_checkpoint


def _exif_jpeg(img_bgr: np.ndarray, orientation: int) -> bytes:
    """A JPEG with an EXIF APP1 segment holding only the Orientation tag."""
    ok, jpg = cv2.imencode(".jpg", img_bgr)
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + b"\x00\x00\x00\x00"
    app1 = b"Exif\x00\x00" + tiff
    seg = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    data = jpg.tobytes()
    return data[:2] + seg + data[2:]


def test_read_image_variants(tmp_path):
    base = np.zeros((20, 40, 3), np.uint8)
    base[:, :20] = (0, 0, 255)  # BGR red on the left
    (tmp_path / "rot.jpg").write_bytes(_exif_jpeg(base, 6))  # 6: rotate 90 degrees clockwise to view
    rgb = read_image(tmp_path / "rot.jpg")
    assert rgb.shape == (40, 20, 3)  # rotated
    assert rgb[5, 10, 0] > 200  # the red half is now on top
    cv2.imwrite(str(tmp_path / "gray.png"), np.full((10, 12), 77, np.uint8))
    assert read_image(tmp_path / "gray.png").shape == (10, 12, 3)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 2] = 255
    rgba[..., 3] = 128
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    assert read_image(tmp_path / "rgba.png")[0, 0].tolist() == [255, 0, 0]
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((6, 6, 3), 65535, np.uint16))
    deep = read_image(tmp_path / "deep.png")
    assert deep.dtype == np.uint8 and deep.max() == 255
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ExposeError, match="bad.jpg: cannot decode image"):
        read_image(tmp_path / "bad.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ExposeError, match="empty or missing"):
        read_image(tmp_path / "empty.png")


def test_discover_inputs(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/2.jpg", "a/b/1.png", "a/notes.txt", "a/clip.avi"):
        (tmp_path / name).write_bytes(b"x")
    items = discover_inputs([tmp_path / "a"])
    assert [(i.path.relative_to(tmp_path).as_posix(), i.kind) for i in items] == [
        ("a/2.jpg", "image"), ("a/b/1.png", "image"), ("a/clip.avi", "video")]
    assert [i.path.name for i in discover_inputs([str(tmp_path / "a" / "*.jpg")])] == ["2.jpg"]
    with pytest.raises(ExposeError, match="no such file, folder or pattern"):
        discover_inputs([tmp_path / "missing"])
    with pytest.raises(ExposeError, match="unsupported file type"):
        discover_inputs([tmp_path / "a" / "notes.txt"])


def test_boxes_file_formats(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps({"img1.jpg": [[1, 2, 11, 22], [0, 0, 5, 5, 0.3]]}))
    table = B.load_boxes(tmp_path / "b.json")
    assert B.boxes_for(table, "img1.jpg") == [[1, 2, 11, 22, 1.0], [0, 0, 5, 5, 0.3]]
    coco = [{"image_id": 42, "bbox": [10, 20, 30, 40], "score": 0.9, "category_id": 1},
            {"image_id": 42, "bbox": [0, 0, 1, 1], "score": 0.9, "category_id": 3}]
    (tmp_path / "c.json").write_text(json.dumps(coco))
    table = B.load_boxes(tmp_path / "c.json")
    assert B.boxes_for(table, "000000000042.jpg") == [[10, 20, 40, 60, 0.9]]
    (tmp_path / "bad.json").write_text(json.dumps({"x.jpg": [[1, 2, 3]]}))
    with pytest.raises(ExposeError, match="bad box"):
        B.load_boxes(tmp_path / "bad.json")


def test_iou_nms_and_detectors():
    assert B.iou([0, 0, 2, 2, 1], [1, 0, 3, 2, 1]) == pytest.approx(2 / 6)
    kept = B.nms([[0, 0, 10, 10, 0.5], [1, 1, 10, 10, 0.9], [20, 20, 30, 30, 0.1]], 0.5)
    assert kept == [[1, 1, 10, 10, 0.9], [20, 20, 30, 30, 0.1]]
    blank = np.full((300, 200, 3), 128, np.uint8)
    assert B.detect_hog(blank) == []
    assert B.full_image_box(blank) == [[0.0, 0.0, 200.0, 300.0, 1.0]]


def test_mesh_formats_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(30, 3)).astype(np.float32)
    f = rng.integers(0, 30, size=(40, 3))
    export.write_obj(tmp_path / "m.obj", v, f)
    lines = (tmp_path / "m.obj").read_text().splitlines()
    vs = np.array([[float(t) for t in line.split()[1:]] for line in lines if line.startswith("v ")])
    fs = np.array([[int(t) for t in line.split()[1:]] for line in lines if line.startswith("f ")])
    np.testing.assert_allclose(vs, v, atol=1e-6)
    np.testing.assert_array_equal(fs - 1, f)
    export.write_ply(tmp_path / "m.ply", v, f)
    pv, pf = export.read_ply(tmp_path / "m.ply")
    np.testing.assert_array_equal(pv, v)
    np.testing.assert_array_equal(pf, f)
    export.write_glb(tmp_path / "m.glb", v, f)
    gltf, gv, gf = export.read_glb(tmp_path / "m.glb")
    np.testing.assert_array_equal(gv, v)
    np.testing.assert_array_equal(gf, f)
    assert gltf["asset"]["version"] == "2.0" and gltf["accessors"][0]["max"] == v.max(0).tolist()


def test_render_depth_order_and_coverage():
    img = np.zeros((100, 100, 3), np.uint8)
    sq = np.array([[-0.1, -0.1, 0], [0.1, -0.1, 0], [0.1, 0.1, 0], [-0.1, 0.1, 0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    near = (sq + [0.05, 0, 2.0], faces)  # x from 47.5 to 57.5 px, depth 2 m
    far = (sq * 2 + [0, 0, 4.0], faces)  # x from 45 to 55 px, depth 4 m
    out = render_overlay(img, [far, near], focal_length=100.0, alpha=1.0)  # colours: far blue, near red
    assert out[50, 50].tolist() == out[50, 53].tolist()  # both inside the near square
    assert out[50, 50, 0] > out[50, 50, 2]  # the near (red) covers the far (blue), whatever the list order
    assert out[50, 46, 2] > out[50, 46, 0]  # the strip only the far square covers
    assert out[50, 56, 0] > out[50, 56, 2]  # the strip only the near square covers
    assert out[5, 5].tolist() == [0, 0, 0]  # background untouched


@pytest.fixture(scope="module")
def infer_tree(standin_tree, tmp_path_factory):
    import shutil

    root = tmp_path_factory.mktemp("infer_data")
    shutil.copytree(standin_tree, root, dirs_exist_ok=True)
    write_mmhuman3d_checkpoint(root / "pretrained_models" / "expose.pth", "expose", seed=1, small=True)
    return root


def _inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(folder / f"img{i}.jpg"), (rng.random((240, 320, 3)) * 255).astype(np.uint8))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(4):
        writer.write(np.full((120, 160, 3), 40 * i, np.uint8))
    writer.release()
    boxes = {"img0.jpg": [[50, 20, 150, 220]], "img1.jpg": [[10, 10, 110, 200, 0.9], [170, 30, 300, 230, 0.8]]}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    return folder


def test_infer_end_to_end(infer_tree, tmp_path, run_cli):
    folder = _inputs(tmp_path)
    out = tmp_path / "out"
    args = ["--data-dir", infer_tree, "-q", "infer", folder, "--out", out, "--boxes", tmp_path / "boxes.json",
            "--detector", "full-image", "--format", "obj,ply,glb,npz,json", "--render", "--every", "2", "--batch-size", "2"]
    result = run_cli(*args)
    assert result.exit_code == 1  # broken.jpg failed; the rest went on
    assert "broken.jpg" in result.stderr and "cannot decode" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    by_input = {}
    for r in summary["inputs"]:
        by_input.setdefault(r["input"].rsplit("/", 1)[-1], []).append(r)
    assert by_input["img1.jpg"][0]["persons"] == 2 and by_input["img0.jpg"][0]["persons"] == 1
    assert [r["frame"] for r in by_input["clip.avi"]] == [0, 2]
    assert summary["failed"] == 1
    # every format re-read: same mesh, SMPL-X topology
    npz = np.load(out / "img1" / "person_01.npz")
    assert npz["vertices"].shape == (10475, 3) and npz["faces"].shape == (20908, 3)
    pv, pf = export.read_ply(out / "img1" / "person_01.ply")
    np.testing.assert_allclose(pv, npz["vertices"], atol=1e-6)
    _, gv, gf = export.read_glb(out / "img1" / "person_01.glb")
    np.testing.assert_array_equal(gf, npz["faces"])
    obj_v = [line for line in (out / "img1" / "person_01.obj").read_text().splitlines() if line.startswith("v ")]
    assert len(obj_v) == 10475
    params = json.loads((out / "img1" / "person_01.json").read_text())
    assert np.allclose(params["bbox_xyxy"], [10, 10, 110, 200])  # persons are numbered largest box first
    # parameters consistent with each other and with the mesh
    from expose_cli.geometry.rotations import axis_angle_to_matrix

    np.testing.assert_allclose(axis_angle_to_matrix(npz["body_pose_aa"]).numpy(), npz["body_pose_rotmat"], atol=1e-5)
    np.testing.assert_allclose(npz["vertices_camera"], npz["vertices"] + npz["camera_translation"], atol=1e-6)
    # the full-perspective placement reproduces the weak-perspective 2D keypoints (to ~1%)
    f, (h, w) = float(npz["focal_length"]), npz["image_size"]
    j = npz["joints3d"] + npz["camera_translation"]
    proj = j[:, :2] / j[:, 2:] * f + [w / 2, h / 2]
    box = npz["bbox_xyxy"]
    assert np.abs(proj - npz["keypoints2d"]).max() < 0.02 * max(box[2] - box[0], box[3] - box[1])
    assert (out / "img1" / "overlay.png").is_file() and (out / "clip" / "overlay.mp4").is_file()
    assert cv2.VideoCapture(str(out / "clip" / "overlay.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 2
    # resume: nothing done twice
    mtime = (out / "img1" / "person_01.npz").stat().st_mtime_ns
    again = run_cli(*args, "--skip-existing")
    assert again.exit_code == 1
    assert (out / "img1" / "person_01.npz").stat().st_mtime_ns == mtime
    summary = json.loads((out / "summary.json").read_text())
    assert sum(1 for r in summary["inputs"] if r.get("skipped")) == 4


def test_infer_errors_before_work(infer_tree, tmp_path, run_cli):
    folder = _inputs(tmp_path)
    res = run_cli("--data-dir", tmp_path / "empty", "infer", folder, "--out", tmp_path / "o")
    assert res.exit_code == 2 and "expose.pth: checkpoint not found" in res.stderr and "fetch-models" in res.stderr
    assert not (tmp_path / "o").exists()
    res = run_cli("--data-dir", infer_tree, "--device", "cpu", "infer", folder, "--precision", "fp16")
    assert res.exit_code == 1 and "needs a CUDA device" in res.stderr
    res = run_cli("--data-dir", infer_tree, "infer", folder, "--format", "stl")
    assert res.exit_code == 1 and "unknown --format stl" in res.stderr


def test_no_person_found(infer_tree, tmp_path, run_cli):
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((200, 150, 3), 128, np.uint8))
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "blank.png", "--out", tmp_path / "o")
    assert res.exit_code == 0 and "no person found" in res.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["inputs"][0]["persons"] == 0


def test_demo_runs(tmp_path, run_cli):
    res = run_cli("-q", "demo", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    assert "meaningless" in res.stdout
    assert (tmp_path / "results" / "demo_01" / "overlay.png").is_file()
    assert (tmp_path / "results" / "demo_01" / "person_01.glb").is_file()
