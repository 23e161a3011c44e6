"""`expose infer`: inputs, boxes, export formats, rendering, the end-to-end CLI, and the demo."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from expose_cli.errors import ExposeError
from expose_cli.inference import boxes as B
from expose_cli.inference import export
from expose_cli.inference.inputs import discover_inputs
from expose_cli.inference.render import render_overlay
from expose_cli.io.images import read_image
from expose_cli.testing.trees import link_tree


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


def test_write_image_round_trips_rgb_and_leaves_no_temporary_file(tmp_path):
    from expose_cli.io.images import write_image

    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:, :4] = (255, 0, 0)  # red on the left, as RGB
    path = write_image(tmp_path / "out.png", rgb)
    assert path == tmp_path / "out.png" and [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert (read_image(path) == rgb).all()  # PNG: lossless, channels in the order given
    assert cv2.imread(str(path))[0, 0].tolist() == [0, 0, 255]  # on disk as OpenCV's BGR: red
    with pytest.raises(cv2.error):
        write_image(tmp_path / "out.unknown", rgb)  # no writer for the ending
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


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
    # an explicit empty list: no person (not "ask the detector")
    (tmp_path / "e.json").write_text(json.dumps({"none.jpg": []}))
    assert B.boxes_for(B.load_boxes(tmp_path / "e.json"), "none.jpg") == []
    assert B.boxes_for(B.load_boxes(tmp_path / "e.json"), "other.jpg") is None
    # COCO ids as strings, with or without leading zeros
    coco = [{"image_id": "42", "bbox": [1, 2, 3, 4]}, {"image_id": "000000000007", "bbox": [5, 6, 7, 8], "score": 0.5},
            {"image_id": "img_9", "bbox": [0, 0, 1, 1]}]
    (tmp_path / "s.json").write_text(json.dumps(coco))
    table = B.load_boxes(tmp_path / "s.json")
    assert B.boxes_for(table, "000000000042.jpg") == [[1, 2, 4, 6, 1.0]]
    assert B.boxes_for(table, "7.png") == [[5, 6, 12, 14, 0.5]]
    assert B.boxes_for(table, "frames/img_9.jpg") == [[0, 0, 1, 1, 1.0]]


def test_box_keys_relative_paths(tmp_path, monkeypatch):
    """Two files with the same name in different folders: a relative-path key wins over the name."""
    (tmp_path / "in" / "a").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    table = {"a/p.jpg": [[1, 1, 2, 2, 1.0]], "p.jpg": [[3, 3, 4, 4, 1.0]], "in/b/p.jpg": [[5, 5, 6, 6, 1.0]]}
    assert B.boxes_for(table, tmp_path / "in" / "a" / "p.jpg", root=tmp_path / "in") == [[1, 1, 2, 2, 1.0]]
    assert B.boxes_for(table, Path("in/b/p.jpg"), root=Path("in")) == [[5, 5, 6, 6, 1.0]]  # relative to the cwd
    assert B.boxes_for(table, tmp_path / "in" / "c" / "p.jpg", root=tmp_path / "in") == [[3, 3, 4, 4, 1.0]]
    cv2.imwrite(str(tmp_path / "in" / "a" / "p.jpg"), np.zeros((4, 4, 3), np.uint8))
    assert discover_inputs([tmp_path / "in"])[0].root == tmp_path / "in"
    assert discover_inputs([tmp_path / "in" / "a" / "p.jpg"])[0].root is None


def test_validate_boxes():
    kept, warnings = B.validate_boxes([[10, 10, 10, 50, 1.0], [5, 5, 2, 9, 1.0], [200, 10, 260, 40, 1.0],
                                       [-20, -10, 50, 500, 0.7], [1, 2, 3, float("nan"), 1.0], [10, 10, 20, 20]],
                                      (100, 150))
    assert kept == [[0.0, 0.0, 50.0, 100.0, 0.7], [10.0, 10.0, 20.0, 20.0, 1.0]]
    assert len(warnings) == 4
    assert "box 0" in warnings[0] and "zero or negative area" in warnings[0]
    assert "box 2" in warnings[2] and "outside the 150x100 image" in warnings[2]
    assert "not finite" in warnings[3]


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
    export.write_glb(tmp_path / "m.glb", v, f)  # camera frame (y down, z forward) -> glTF (+Y up, +Z to the viewer)
    gltf, gv, gf = export.read_glb(tmp_path / "m.glb")
    np.testing.assert_array_equal(gv, v * np.float32([1, -1, -1]))
    np.testing.assert_array_equal(gf, f)
    assert gltf["asset"]["version"] == "2.0" and gltf["accessors"][0]["max"] == gv.max(0).tolist()
    export.write_glb(tmp_path / "raw.glb", v, f, from_camera_frame=False)
    np.testing.assert_array_equal(export.read_glb(tmp_path / "raw.glb")[1], v)


def test_glb_rotation_keeps_outward_winding(tmp_path):
    """A rotation (not a mirror): a closed mesh keeps its positive signed volume and outward normals."""
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32) + [0.1, 0.2, 3.0]
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])

    def signed_volume(verts):
        t = verts[f]
        return np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6

    export.write_glb(tmp_path / "t.glb", v, f)
    gltf, gv, gf = export.read_glb(tmp_path / "t.glb")
    assert signed_volume(v) > 0 and signed_volume(gv) == pytest.approx(signed_volume(v), rel=1e-5)
    data = (tmp_path / "t.glb").read_bytes()
    start = 28 + struct.unpack_from("<I", data, 12)[0]
    normals = np.frombuffer(data, "<f4", 12, start + gltf["bufferViews"][1]["byteOffset"]).reshape(4, 3)
    assert (normals @ (gv - gv.mean(0)).T).diagonal().min() > 0  # pointing away from the centre


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
    broken = [line for line in result.stderr.splitlines() if "broken.jpg" in line]
    assert len(broken) == 1 and broken[0].count("broken.jpg") == 1 and "cannot decode" in broken[0]
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
    np.testing.assert_allclose(gv, npz["vertices"] * [1, -1, -1], atol=1e-6)  # glTF axes
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
    cap = cv2.VideoCapture(str(out / "clip" / "overlay.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 2 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)  # 10 fps / every 2
    assert summary["complete"] is True and summary["videos"][0]["fps"] == pytest.approx(5.0)
    # resume: nothing done twice
    mtime = (out / "img1" / "person_01.npz").stat().st_mtime_ns
    again = run_cli(*args, "--resume")
    assert again.exit_code == 1
    assert (out / "img1" / "person_01.npz").stat().st_mtime_ns == mtime
    resumed = json.loads((out / "summary.json").read_text())
    assert sum(1 for r in resumed["inputs"] if r.get("skipped")) == 4
    # the skipped inputs keep their persons and files in the new summary
    first = {(r["input"], r["frame"]): r for r in summary["inputs"]}
    for r in resumed["inputs"]:
        assert r["persons"] == first[(r["input"], r["frame"])]["persons"]
        assert r["files"] == first[(r["input"], r["frame"])]["files"]
    assert sum(r["persons"] for r in resumed["inputs"]) == sum(r["persons"] for r in summary["inputs"]) == 5


def test_infer_errors_before_work(infer_tree, tmp_path, run_cli):
    folder = _inputs(tmp_path)
    res = run_cli("--data-dir", tmp_path / "empty", "infer", folder, "--out", tmp_path / "o")
    assert res.exit_code == 2 and "expose.pth: checkpoint not found" in res.stderr and "fetch-models" in res.stderr
    assert not (tmp_path / "o").exists()
    res = run_cli("--data-dir", infer_tree, "--device", "cpu", "infer", folder, "--precision", "fp16")
    assert res.exit_code == 2 and "needs a CUDA device" in res.stderr
    res = run_cli("--data-dir", infer_tree, "infer", folder, "--format", "stl")
    assert res.exit_code == 2 and "unknown --format stl" in res.stderr


def test_no_person_found(infer_tree, tmp_path, run_cli):
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((200, 150, 3), 128, np.uint8))
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "blank.png", "--out", tmp_path / "o")
    assert res.exit_code == 0 and "no person found" in res.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["inputs"][0]["persons"] == 0


def test_demo_runs(tmp_path, run_cli, standin_tree, monkeypatch):
    from expose_cli.io.paths import DataTree
    from expose_cli.testing import standins

    # the session's stand-in files, linked: the demo's own copy would write ~0.4 GB per run
    monkeypatch.setattr(standins, "write_standin_data_tree", lambda root: DataTree(link_tree(standin_tree, root)))
    res = run_cli("-q", "demo", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    assert "meaningless" in res.stdout
    assert (tmp_path / "results" / "demo_01" / "overlay.png").is_file()
    assert (tmp_path / "results" / "demo_01" / "person_01.glb").is_file()


# -- more end-to-end cases -------------------------------------------------------------------------

def _image(path, h=240, w=320, seed=0):
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), (rng.random((h, w, 3)) * 255).astype(np.uint8))
    return path


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def test_camera_space_and_focal_length(infer_tree, tmp_path, run_cli):
    _image(tmp_path / "cam.jpg", 300, 400)
    (tmp_path / "b.json").write_text(json.dumps({"cam.jpg": [[40, 30, 160, 270]]}))
    out = tmp_path / "o"
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "cam.jpg", "--out", out, "--boxes", tmp_path / "b.json",
                  "--camera-space", "--focal-length", "1500", "--format", "obj,npz")
    assert res.exit_code == 0, res.output
    npz = np.load(out / "cam" / "person_00.npz")
    # the translation by hand: square crop of side 1.25 * max(w, h) around the box centre
    s, tx, ty = npz["camera_weak_perspective"].astype(np.float64)
    side, cx, cy = 1.25 * 240, 100.0, 150.0
    expected = [tx + 2 * (cx - 200) / (s * side), ty + 2 * (cy - 150) / (s * side), 2 * 1500 / (s * side)]
    np.testing.assert_allclose(npz["camera_translation"], expected, rtol=1e-5)
    assert float(npz["focal_length"]) == 1500.0
    np.testing.assert_allclose(npz["vertices_camera"], npz["vertices"] + npz["camera_translation"], atol=1e-5)
    obj_v = np.array([[float(t) for t in line.split()[1:]]
                      for line in (out / "cam" / "person_00.obj").read_text().splitlines() if line.startswith("v ")])
    np.testing.assert_allclose(obj_v, npz["vertices_camera"], atol=2e-6)  # the OBJ is the camera-space mesh
    # and the camera-space joints project onto the image keypoints when taken at the translation's
    # depth (the weak-perspective model the network predicts: every point at depth t_z), to one crop
    # pixel (side / 256 image px: crop pixels are (ndc + 1) / 2 * (res - 1), the translation uses res)
    t = npz["camera_translation"].astype(np.float64)
    proj = (npz["joints3d"][:, :2] + t[:2]) / t[2] * 1500 + [200, 150]
    np.testing.assert_allclose(proj, npz["keypoints2d"], atol=side / 256)


def test_min_score_max_people_max_frames(infer_tree, tmp_path, run_cli):
    _image(tmp_path / "crowd.jpg")
    boxes = {"crowd.jpg": [[0, 0, 200, 230, 0.3], [10, 10, 110, 200, 0.9], [170, 30, 300, 230, 0.8], [5, 5, 40, 60, 0.95]]}
    (tmp_path / "b.json").write_text(json.dumps(boxes))
    writer = cv2.VideoWriter(str(tmp_path / "v.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(5):
        writer.write(np.full((120, 160, 3), 30 * i, np.uint8))
    writer.release()
    out = tmp_path / "o"
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "crowd.jpg", tmp_path / "v.avi", "--out", out,
                  "--boxes", tmp_path / "b.json", "--detector", "full-image", "--min-score", "0.5", "--max-people", "2",
                  "--max-frames", "3", "--format", "json")
    assert res.exit_code == 0, res.output
    rec = {(Path(r["input"]).name, r["frame"]): r for r in _summary(out)["inputs"]}
    assert rec[("crowd.jpg", None)]["persons"] == 2  # 0.3 dropped; of the other three the two largest
    kept = [json.loads((out / "crowd" / f"person_{k:02d}.json").read_text())["bbox_xyxy"] for k in range(2)]
    assert kept == [[170, 30, 300, 230], [10, 10, 110, 200]]
    assert not (out / "crowd" / "person_02.json").exists()
    assert sorted(f for (n, f) in rec if n == "v.avi") == [0, 1, 2]


@pytest.mark.parametrize("kind, n_verts, part", [("body", 10475, "body_pose"), ("hand", 778, "right_hand_pose"),
                                                  ("face", None, "jaw_pose")])
def test_ckpt_kinds(infer_tree, tmp_path, run_cli, kind, n_verts, part):
    from expose_cli.io.paths import DataTree

    assert DataTree(infer_tree).checkpoint(kind).is_file()
    _image(tmp_path / "p.jpg")
    (tmp_path / "b.json").write_text(json.dumps({"p.jpg": [[60, 40, 180, 160]]}))
    out = tmp_path / "o"
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "p.jpg", "--out", out, "--ckpt", kind,
                  "--boxes", tmp_path / "b.json", "--format", "npz,ply", "--render")
    assert res.exit_code == 0, res.output
    npz = np.load(out / "p" / "person_00.npz")
    if n_verts is not None:
        assert npz["vertices"].shape == (n_verts, 3)
    assert f"{part}_rotmat" in npz.files and np.isfinite(npz["vertices"]).all()
    pv, pf = export.read_ply(out / "p" / "person_00.ply")
    np.testing.assert_array_equal(pf, npz["faces"])
    assert (out / "p" / "overlay.png").is_file()


@pytest.mark.parametrize("override, res", [(None, 224), ("hand.img_res=160", 160)])
def test_set_img_res_changes_the_crops(infer_tree, tmp_path, run_cli, monkeypatch, override, res):
    """``--set hand.img_res=N``: the hand model's input crops are N x N pixels (224 by default)."""
    from expose_cli.inference import batching
    from expose_cli.io.paths import DataTree

    assert DataTree(infer_tree).checkpoint("hand").is_file()
    sizes = []

    def collate(crops, *device):
        batch = real_collate(crops, *device)
        sizes.append(tuple(batch.img.shape[-2:]))
        return batch

    real_collate = batching.collate
    monkeypatch.setattr(batching, "collate", collate)
    _image(tmp_path / "p.jpg")
    (tmp_path / "b.json").write_text(json.dumps({"p.jpg": [[60, 40, 180, 160]]}))
    res_args = [] if override is None else ["--set", override]
    result = run_cli("--data-dir", infer_tree, "-q", *res_args, "infer", tmp_path / "p.jpg", "--out", tmp_path / "o",
                     "--ckpt", "hand", "--boxes", tmp_path / "b.json", "--format", "npz")
    assert result.exit_code == 0, result.output
    assert sizes == [(res, res)]
    assert np.load(tmp_path / "o" / "p" / "person_00.npz")["vertices"].shape == (778, 3)


def _silhouette(img, cx, top, h, col=(30, 30, 30)):
    """A dark pedestrian silhouette (head, torso, arms, legs) that OpenCV's HOG people detector finds."""
    u = h / 8
    cv2.ellipse(img, (int(cx), int(top + 0.5 * u)), (int(0.38 * u), int(0.5 * u)), 0, 0, 360, col, -1)
    cv2.rectangle(img, (int(cx - 0.12 * u), int(top + u)), (int(cx + 0.12 * u), int(top + 1.2 * u)), col, -1)
    poly = [[cx - 0.9 * u, top + 1.2 * u], [cx + 0.9 * u, top + 1.2 * u], [cx + 0.7 * u, top + 4.2 * u], [cx - 0.7 * u, top + 4.2 * u]]
    cv2.fillConvexPoly(img, np.array(poly, np.int32), col)
    for s in (-1, 1):
        arm = [[cx + s * 0.9 * u, top + 1.3 * u], [cx + s * 1.2 * u, top + 1.5 * u], [cx + s * 1.1 * u, top + 4.3 * u],
               [cx + s * 0.85 * u, top + 4.3 * u]]
        leg = [[cx + s * 0.05 * u, top + 4.2 * u], [cx + s * 0.7 * u, top + 4.2 * u], [cx + s * 0.6 * u, top + 8 * u],
               [cx + s * 0.2 * u, top + 8 * u]]
        cv2.fillConvexPoly(img, np.array(arm, np.int32), col)
        cv2.fillConvexPoly(img, np.array(leg, np.int32), col)


def test_hog_finds_a_person_end_to_end(infer_tree, tmp_path, run_cli):
    rng = np.random.default_rng(0)
    img = np.clip(180 + rng.normal(0, 8, (320, 240, 3)), 0, 255).astype(np.uint8)
    _silhouette(img, 120, 85, 150)  # 150 px tall, x 100..140, y 85..235
    cv2.imwrite(str(tmp_path / "walker.png"), img)
    # OpenCV's default people detector finds the silhouette, once (margin ~2.4 with OpenCV 4.14), in a
    # box around it centred on it (within 6 px: the detector's 8 px stride)
    found = B.detect_hog(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    assert len(found) == 1 and found[0][0] < 100 and found[0][2] > 140 and found[0][1] < 85 and found[0][3] > 235
    assert abs((found[0][0] + found[0][2]) / 2 - 120) < 6 and abs((found[0][1] + found[0][3]) / 2 - 160) < 6
    out = tmp_path / "o"
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "walker.png", "--out", out, "--format", "json")
    assert res.exit_code == 0, res.output
    assert _summary(out)["inputs"][0]["persons"] == 1
    box = json.loads((out / "walker" / "person_00.json").read_text())["bbox_xyxy"]
    assert box[0] < 120 < box[2] and box[1] < 160 < box[3]  # around the silhouette
    assert 0.5 < float(found[0][4]) < 5  # an SVM margin, not a probability (docs: --min-score)
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "walker.png", "--out", tmp_path / "o2",
                  "--format", "json", "--min-score", "9")
    assert res.exit_code == 0 and _summary(tmp_path / "o2")["inputs"][0]["persons"] == 0


def test_missing_body_model_message(infer_tree, tmp_path, run_cli):
    tree = link_tree(infer_tree, tmp_path / "tree")
    (tree / "body_models" / "smplx" / "SMPLX_NEUTRAL.npz").unlink()
    _image(tmp_path / "x.jpg")
    res = run_cli("--data-dir", tree, "infer", tmp_path / "x.jpg", "--out", tmp_path / "o")
    assert res.exit_code == 2, res.output
    assert "SMPLX_NEUTRAL" in res.stderr and "import-body-models" in res.stderr
    assert not (tmp_path / "o").exists()  # before any work


def test_overlay_video_keeps_personless_frames(infer_tree, tmp_path, run_cli):
    writer = cv2.VideoWriter(str(tmp_path / "walk.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 12, (240, 320))
    for i in range(6):
        frame = np.full((320, 240, 3), 180, np.uint8)
        if i in (2, 3):
            _silhouette(frame, 120, 85, 150)
        writer.write(frame)
    writer.release()
    out = tmp_path / "o"
    # the HOG detector: frames 0 and 4 are plain (no person), frame 2 holds the silhouette
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "walk.avi", "--out", out, "--render",
                  "--every", "2", "--format", "json")
    assert res.exit_code == 0, res.output
    records = _summary(out)["inputs"]
    assert [r["frame"] for r in records] == [0, 2, 4]
    assert [r["persons"] for r in records] == [0, 1, 0]  # HOG finds the silhouette; a plain frame has no edges
    no_person_lines = [line for line in res.stderr.splitlines() if "no person found" in line]
    assert len(no_person_lines) == 1 and "in 2 of 3 frame(s)" in no_person_lines[0]
    cap = cv2.VideoCapture(str(out / "walk" / "overlay.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 3  # every processed frame, with or without a person
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(6.0)  # 12 fps / every 2
    ok, first = cap.read()
    assert ok and abs(int(first.mean()) - 180) < 8  # frame 0: the plain frame
    # no overlay.png per frame; a frame with persons keeps what its overlay is drawn from
    assert list(out.rglob("overlay.png")) == [] and [p.parent.name for p in out.rglob("overlay.npz")] == ["frame_000002"]
    want = (out / "walk" / "overlay.mp4").read_bytes()
    # resumed after frame 2 (its overlay drawn again from overlay.npz), then without frame 2's
    # overlay.npz (the frame is run again): the same overlay.mp4, bit for bit
    for lost, skipped in (("frame_000004/result.json", 2), ("frame_000002/overlay.npz", 2)):
        (out / "walk" / lost).unlink()
        again = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "walk.avi", "--out", out, "--render",
                        "--every", "2", "--format", "json", "--resume")
        assert again.exit_code == 0, again.output
        assert sum(bool(r.get("skipped")) for r in _summary(out)["inputs"]) == skipped, lost
        assert (out / "walk" / "overlay.mp4").read_bytes() == want, lost


def test_bad_boxes_and_empty_box_list(infer_tree, tmp_path, run_cli):
    _image(tmp_path / "a.jpg")
    _image(tmp_path / "none.jpg", seed=1)
    boxes = {"a.jpg": [[50, 20, 50, 220], [400, 10, 500, 100], [-30, 20, 150, 400, 0.9]], "none.jpg": []}
    (tmp_path / "b.json").write_text(json.dumps(boxes))
    out = tmp_path / "o"
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "a.jpg", tmp_path / "none.jpg", "--out", out,
                  "--boxes", tmp_path / "b.json", "--detector", "full-image", "--format", "json")
    assert res.exit_code == 0, res.output
    rec = {Path(r["input"]).name: r for r in _summary(out)["inputs"]}
    assert rec["a.jpg"]["persons"] == 1 and len(rec["a.jpg"]["warnings"]) == 2
    assert "zero or negative area" in rec["a.jpg"]["warnings"][0] and "outside" in rec["a.jpg"]["warnings"][1]
    assert json.loads((out / "a" / "person_00.json").read_text())["bbox_xyxy"] == [0, 20, 150, 240]  # clipped
    assert rec["none.jpg"]["persons"] == 0 and rec["none.jpg"]["error"] == "no person found"  # not the full image


class _FailingPredictor:
    """Wraps a predictor; fails any batch holding a crop of an image ``bad_width`` pixels wide."""

    def __init__(self, inner, bad_width):
        self.inner, self.bad_width, self.calls = inner, bad_width, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, batch):
        self.calls += 1
        if batch.full_images is not None and batch.full_images.shape[-1] == self.bad_width:
            raise RuntimeError("simulated failure\nsecond line")
        return self.inner(batch)


def test_model_failure_is_per_input(infer_tree, tmp_path, run_cli, monkeypatch):
    import expose_cli.models as models

    real = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a, **k: _FailingPredictor(real(*a, **k), 333))
    _image(tmp_path / "good.jpg", 240, 320)
    _image(tmp_path / "bad.jpg", 240, 333)
    _image(tmp_path / "later.jpg", 240, 300)
    out = tmp_path / "o"
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "good.jpg", tmp_path / "bad.jpg",
                  tmp_path / "later.jpg", "--out", out, "--detector", "full-image", "--format", "npz", "--batch-size", "4",
                  "--backend", "torch")  # the wrapper above is the predictor that runs (auto would rebuild it)
    assert res.exit_code == 1
    lines = [line for line in res.stderr.splitlines() if "bad.jpg" in line]
    assert len(lines) == 1 and "model failed: RuntimeError: simulated failure" in lines[0]
    summary = _summary(out)
    rec = {Path(r["input"]).name: r for r in summary["inputs"]}
    assert rec["good.jpg"]["persons"] == 1 and rec["later.jpg"]["persons"] == 1 and rec["bad.jpg"]["error"]
    assert summary["failed"] == 1 and summary["complete"] is True
    assert not (out / "bad" / "result.json").exists()  # a re-run with --resume retries it


def test_interrupted_run_leaves_summary_and_resumes(infer_tree, tmp_path):
    from expose_cli.inference.loading import crop_spec
    from expose_cli.inference.options import InferOptions
    from expose_cli.inference.pipeline import run_inference
    from expose_cli.io.paths import DataTree
    from expose_cli.models import load_model

    (tmp_path / "in").mkdir()
    for i in range(3):
        _image(tmp_path / "in" / f"im{i}.jpg", seed=i)
    items = discover_inputs([tmp_path / "in"])
    predictor = load_model("expose", DataTree(infer_tree), "cpu")
    out = tmp_path / "o"
    opts = InferOptions(out_dir=out, crop=crop_spec(predictor, detector="full-image"), formats=("npz",), batch_size=1,
                        skip_existing=True)

    def stop_after_first(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_inference(items, predictor, opts, on_unit=stop_after_first)
    partial = _summary(out)  # valid JSON, says it is incomplete
    assert partial["complete"] is False and len(partial["inputs"]) == 1
    # a crash mid-way through the second input: files but no result.json, and a stray temp file
    (out / "im1").mkdir(exist_ok=True)
    (out / "im1" / "person_00.npz").write_bytes(b"half")
    (out / "im1" / ".person_00.abc.tmp.npz").write_bytes(b"junk")
    seen = []
    summary = run_inference(items, predictor, opts, on_unit=seen.append)
    assert summary["complete"] is True and len(seen) == 3  # progress counts the skipped input too
    assert [bool(r.get("skipped")) for r in summary["inputs"]] == [True, False, False]
    assert all(r["persons"] == 1 for r in summary["inputs"])
    assert np.load(out / "im1" / "person_00.npz")["vertices"].shape == (10475, 3)


def test_reduced_precision_through_the_api(infer_tree, tmp_path):
    """bf16 through the API as through the CLI: the predictor applies it (``make_predictor``, torch
    autocast in the backbones; the heads and body model in float32): every output float32."""
    from expose_cli.inference.backends import make_predictor
    from expose_cli.inference.loading import crop_spec
    from expose_cli.inference.options import InferOptions
    from expose_cli.inference.pipeline import run_inference
    from expose_cli.io.paths import DataTree
    from expose_cli.models import load_model

    _image(tmp_path / "in.jpg")
    base = load_model("expose", DataTree(infer_tree), "cpu")
    out = {}
    for precision in ("fp32", "bf16"):
        out[precision] = tmp_path / precision
        predictor = make_predictor(base, "torch", precision)
        summary = run_inference(discover_inputs([tmp_path / "in.jpg"]), predictor,
                                InferOptions(out_dir=out[precision], crop=crop_spec(predictor, detector="full-image"),
                                             formats=("npz", "json", "glb")))
        assert summary["failed"] == 0 and summary["inputs"][0]["persons"] == 1, summary
        assert summary["runtime"]["precision"] == precision
    a, b = (np.load(out[p] / "in" / "person_00.npz") for p in ("fp32", "bf16"))
    for key in b.files:
        if b[key].dtype.kind == "f":
            assert b[key].dtype == np.float32 and np.isfinite(b[key]).all(), key
    assert b["joints3d_lsp14"].shape == a["joints3d_lsp14"].shape
    assert np.abs(b["vertices"] - a["vertices"]).max() < 0.2  # bf16 keeps about 3 significant digits
    assert not np.array_equal(b["vertices"], a["vertices"])  # bf16 did run (the predictor applies it)


def test_prediction_to_float32():
    import torch

    from expose_cli.inference.batching import prediction_to_float32
    from expose_cli.models.expose import Prediction

    bf = torch.ones(2, 3, dtype=torch.bfloat16)
    pred = Prediction("expose", {"body_pose": bf}, bf, bf, bf, bf, bf, bf, bf, bf,
                      {"left": {"center": bf, "size": bf}}, {"center": bf}, {})
    prediction_to_float32(pred)
    assert pred.rotations["body_pose"].dtype == torch.float32 and pred.joints_j14.dtype == torch.float32
    assert pred.hand_boxes["left"]["size"].dtype == torch.float32 and pred.camera.dtype == torch.float32
