"""Videos: the ONNX person detector's steps, tracking, smoothing and motion export.

Expectations are hand-computed (letterbox ratio, normalised pixel values, assignment optimum) or
independent of the code under test (exhaustive assignment search, a BVH reader and Euler
composition written here, the body model's own joints).
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from expose_cli.errors import ExposeError
from expose_cli.inference import detector as det
from expose_cli.inference.motion import full_pose, to_y_up, write_amass_npz, write_bvh
from expose_cli.inference.smoothing import one_euro, savgol, smooth_track
from expose_cli.inference.tracking import IouTracker, linear_assignment

# -- detector: each step by hand ------------------------------------------------------------------


def test_letterbox_by_hand():
    image = np.zeros((100, 200, 3), np.uint8)
    image[...] = (10, 20, 30)  # RGB
    canvas, ratio = det.letterbox(image, (64, 64))
    assert ratio == pytest.approx(0.32)  # min(64/100, 64/200)
    assert canvas.shape == (64, 64, 3)
    assert canvas[0, 0].tolist() == [30, 20, 10]  # BGR
    assert canvas[31, 63].tolist() == [30, 20, 10]  # last image row: int(100 * 0.32) = 32 rows
    assert canvas[32, 0].tolist() == [114, 114, 114]  # grey below


def test_input_tensor_normalisation_by_hand():
    canvas = np.full((2, 3, 3), 114, np.uint8)
    x = det.to_input_tensor(canvas)
    assert x.shape == (1, 3, 2, 3) and x.dtype == np.float32
    assert x[0, 0, 0, 0] == pytest.approx((114 - 103.53) / 57.375)
    assert x[0, 2, 1, 2] == pytest.approx((114 - 123.675) / 58.395)


def test_postprocess_threshold_class_nms_rescale_clip():
    dets = np.array([
        [10, 10, 50, 90, 0.9],   # kept: x2 (ratio 0.5) -> [20, 20, 100, 180]
        [11, 10, 50, 90, 0.8],   # IoU with the first 0.975 -> suppressed
        [60, 0, 100, 40, 0.1],   # below the threshold
        [60, 0, 100, 40, 0.95],  # another class
        [90, 50, 130, 95, 0.5],  # reaches past the 240 x 200 image: clipped
    ], dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 0])
    boxes = det.postprocess(dets, labels, 0.5, (200, 240), score_threshold=0.3, nms_iou=0.45)
    assert len(boxes) == 2
    np.testing.assert_allclose(boxes[0], [20, 20, 100, 180, 0.9], rtol=1e-6)
    np.testing.assert_allclose(boxes[1], [180, 100, 240, 190, 0.5], rtol=1e-6)


class _ConstantDetector(torch.nn.Module):
    """Two fixed boxes in network-input pixels; the first one's score is the mean of the input's
    third channel (normalised R) / 10 + 0.5, so the score shows how the image was prepared."""

    def forward(self, x):
        n = x.shape[0]
        score = x[:, 2].mean(dim=(1, 2)) / 10 + 0.5
        box = torch.tensor([20.0, 40.0, 100.0, 200.0], dtype=x.dtype).expand(n, 4)
        first = torch.cat([box, score[:, None]], dim=1)
        second = torch.tensor([0.0, 0.0, 10.0, 10.0, 0.99], dtype=x.dtype).expand(n, 5)
        dets = torch.stack([first, second], dim=1)
        labels = torch.tensor([0, 2], dtype=torch.int64).expand(n, 2)
        return dets, labels


def _export_detector(path: Path, size=(320, 320)) -> None:
    torch.onnx.export(_ConstantDetector(), (torch.zeros(1, 3, *size),), str(path), input_names=["input"],
                      output_names=["dets", "labels"], dynamic_axes={"input": {0: "batch"}}, opset_version=17,
                      dynamo=False)


def test_onnx_detector_end_to_end(tmp_path):
    model = tmp_path / "tiny.onnx"
    _export_detector(model)
    detector = det.load_onnx_detector(model, score_threshold=0.3)
    assert detector.input_size == (320, 320)
    image = np.zeros((480, 640, 3), np.uint8)
    image[...] = (200, 100, 50)
    boxes = detector(image)
    # letterbox ratio 320 / 640 = 0.5: the image fills rows 0..239, grey 114 below
    r_image, r_pad = (200 - 123.675) / 58.395, (114 - 123.675) / 58.395
    score = (240 * r_image + 80 * r_pad) / 320 / 10 + 0.5
    assert len(boxes) == 1  # the class-2 box is dropped
    np.testing.assert_allclose(boxes[0][:4], [40, 80, 200, 400], rtol=1e-6)
    assert boxes[0][4] == pytest.approx(score, rel=1e-4)  # float32 ReduceMean over 102,400 pixels


def test_onnx_detector_bad_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(ExposeError, match="not a usable ONNX model") as info:
        det.load_onnx_detector(junk)
    assert "\n" not in str(info.value.message)
    with pytest.raises(ExposeError, match="expose fetch detector"):
        det.load_onnx_detector(tmp_path / "missing.onnx")

    class Wrong(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    wrong = tmp_path / "classifier.onnx"
    torch.onnx.export(Wrong(), (torch.zeros(1, 3, 32, 32),), str(wrong), input_names=["input"], dynamo=False)
    with pytest.raises(ExposeError, match=r"dets \[N, K, 5\]"):
        det.load_onnx_detector(wrong)


# -- tracking --------------------------------------------------------------------------------------


def test_linear_assignment_by_hand():
    cost = np.array([[4, 1, 3], [2, 0, 5], [3, 2, 2]])
    assert linear_assignment(cost) == [(0, 1), (1, 0), (2, 2)]  # 1 + 2 + 2 = 5, the minimum
    assert linear_assignment(np.array([[5, 1, 9], [1, 7, 9]])) == [(0, 1), (1, 0)]
    assert linear_assignment(np.zeros((0, 3))) == []


def test_linear_assignment_matches_exhaustive_search():
    rng = np.random.default_rng(0)
    for _ in range(20):
        rows, cols = (int(v) for v in rng.integers(1, 6, size=2))
        cost = rng.random((rows, cols))
        pairs = linear_assignment(cost)
        assert len(pairs) == min(rows, cols)
        total = sum(cost[r, c] for r, c in pairs)
        if rows <= cols:
            best = min(sum(cost[r, p[r]] for r in range(rows)) for p in itertools.permutations(range(cols), rows))
        else:
            best = min(sum(cost[p[c], c] for c in range(cols)) for p in itertools.permutations(range(rows), cols))
        assert total == pytest.approx(best)


def test_tracker_keeps_ids_through_crossing_and_gaps():
    tracker = IouTracker(iou_threshold=0.3, max_age=3)
    ids = []
    for t in range(10):  # A walks right, B walks left; they are listed in a different order each frame
        a = [10 + 8 * t, 0, 60 + 8 * t, 100, 0.9]
        b = [200 - 8 * t, 0, 250 - 8 * t, 100, 0.9]
        frame_boxes = [a, b] if t % 2 == 0 else [b, a]
        got = tracker.update(t, frame_boxes)
        ids.append(got if t % 2 == 0 else got[::-1])
    assert all(pair == [0, 1] for pair in ids)
    # B hidden for 2 frames comes back with its id; after 5 frames unseen it is a new person
    assert tracker.update(12, [[200 - 8 * 9, 0, 250 - 8 * 9, 100, 0.9]]) == [1]
    assert tracker.update(18, [[200 - 8 * 9, 0, 250 - 8 * 9, 100, 0.9]]) == [2]


# -- smoothing -------------------------------------------------------------------------------------


def test_savgol_keeps_polynomials_and_one_euro_keeps_constants():
    t = np.arange(20, dtype=np.float64)
    quadratic = 0.5 * t ** 2 - 3 * t + 2
    np.testing.assert_allclose(savgol(quadratic, window=7, order=2), quadratic, atol=1e-9)
    np.testing.assert_allclose(one_euro(np.full((15, 2), 3.25), fps=30), 3.25)
    # a step is followed with a lag, never overshot
    step = np.r_[np.zeros(5), np.ones(25)]
    out = one_euro(step, fps=30)
    assert out.max() <= 1 + 1e-12 and out[5] < 1 and out[-1] > 0.95


def _joints(model, params: dict[str, np.ndarray]) -> np.ndarray:
    t = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in params.items()}
    frames = len(t["global_orient"])
    with torch.no_grad():
        out = model(global_orient=t["global_orient"], body_pose=t["body_pose"].reshape(frames, -1),
                    betas=t["betas"], transl=t["transl"])
    return out.joints[:, :55].double().numpy()


def _canonical(axis_angle: np.ndarray) -> np.ndarray:
    from expose_cli.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    return matrix_to_axis_angle(axis_angle_to_matrix(torch.as_tensor(axis_angle))).numpy()


def _jitter(joints: np.ndarray, fps: float) -> float:
    """Mean frame-to-frame joint acceleration (m/s^2)."""
    return float(np.linalg.norm(np.diff(joints, n=2, axis=0), axis=-1).mean() * fps ** 2)


@pytest.mark.parametrize("method", ["oneeuro", "savgol"])
def test_smoothing_reduces_jitter_and_keeps_clean_tracks(standin_tree, method):
    import smplx

    from expose_cli.io.paths import DataTree

    fps, frames = 30.0, 60
    model = smplx.create(str(DataTree(standin_tree).body_models), model_type="smplx", gender="neutral",
                         use_pca=False, num_betas=10, ext="npz", batch_size=frames)
    t = np.arange(frames) / fps
    rng = np.random.default_rng(1)
    base = rng.normal(0, 0.3, (1, 21, 3))
    clean = {  # a slow, smooth motion: 0.4 Hz swings of up to 0.25 rad
        "global_orient": np.stack([np.pi + 0.1 * np.sin(2 * np.pi * 0.4 * t), 0.2 * np.sin(2 * np.pi * 0.3 * t),
                                   np.zeros(frames)], 1),
        "body_pose": base + 0.25 * np.sin(2 * np.pi * 0.4 * t)[:, None, None] * np.ones((1, 21, 3)),
        "betas": np.repeat(rng.normal(0, 0.5, (1, 10)), frames, 0),
        "transl": np.stack([0.3 * np.sin(2 * np.pi * 0.2 * t), np.zeros(frames), 5 + 0.2 * t], 1),
    }
    noisy = {k: v + rng.normal(0, 0.03 if k != "transl" else 0.01, v.shape) for k, v in clean.items()}
    keys = ("global_orient", "body_pose")
    for params in (clean, noisy):  # as predictions come: angles in [0, pi], so the root's axis flips near pi
        for k in keys:
            params[k] = _canonical(params[k])
    ref = _joints(model, clean)
    smoothed_noisy = _joints(model, smooth_track(noisy, method, fps, keys))
    smoothed_clean = _joints(model, smooth_track(clean, method, fps, keys))
    before, after = _jitter(_joints(model, noisy), fps), _jitter(smoothed_noisy, fps)
    drift = np.linalg.norm(smoothed_clean - ref, axis=-1).max()
    held = {k: np.repeat(v[:1], frames, 0) for k, v in clean.items()}
    held_drift = np.linalg.norm(_joints(model, smooth_track(held, method, fps, keys)) - _joints(model, held), axis=-1).max()
    print(f"{method}: jitter {before:.2f} -> {after:.2f} m/s^2 ({before / after:.1f}x), "
          f"moving clean track moved {drift * 1000:.2f} mm, held pose {held_drift * 1000:.4f} mm")
    assert before / after >= 4.0
    assert held_drift < 1e-3
    if method == "savgol":  # zero-phase: a clean moving track stays put; causal one-euro lags (docs/infer.md)
        assert drift < 1e-3


# -- motion export ---------------------------------------------------------------------------------


def _read_bvh(path: Path):
    """A small BVH reader: joint names, parents, offsets, channels and the frame matrix."""
    tokens = path.read_text().split("MOTION")
    names, parents, offsets, channels, stack = [], [], [], [], []
    lines = iter(tokens[0].splitlines())
    for line in lines:
        words = line.split()
        if not words:
            continue
        if words[0] in ("ROOT", "JOINT"):
            parents.append(stack[-1] if stack else -1)
            names.append(words[1])
            stack.append(len(names) - 1)
        elif words[0] == "End":
            next(lines), next(lines), next(lines)  # "{", "OFFSET", "}"
        elif words[0] == "OFFSET":
            offsets.append([float(w) for w in words[1:4]])
        elif words[0] == "CHANNELS":
            channels.append(words[2:])
        elif words[0] == "}":
            stack.pop()
    motion = tokens[1].strip().splitlines()
    frame_count = int(motion[0].split()[1])
    frame_time = float(motion[1].split()[2])
    data = np.array([[float(v) for v in row.split()] for row in motion[2:]])
    assert data.shape[0] == frame_count
    return names, parents, np.array(offsets), channels, frame_time, data


def _rodrigues(aa: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(aa)
    if angle < 1e-12:
        return np.eye(3)
    k = aa / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def _euler(channels: list[str], degrees: np.ndarray) -> np.ndarray:
    rot = np.eye(3)
    for name, deg in zip(channels, degrees, strict=True):
        a = math.radians(deg)
        c, s = math.cos(a), math.sin(a)
        axis = {"Xrotation": [[1, 0, 0], [0, c, -s], [0, s, c]], "Yrotation": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
                "Zrotation": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[name]
        rot = rot @ np.array(axis)
    return rot


def test_bvh_and_amass_npz_reproduce_the_poses(tmp_path):
    rng = np.random.default_rng(3)
    frames, joints = 4, 55
    parents = np.r_[-1, rng.integers(0, np.arange(1, joints))]  # any tree with parents before children
    names = [f"j{i}" for i in range(joints)]
    rest = rng.normal(0, 0.3, (joints, 3))
    params = {"global_orient": rng.normal(0, 1, (frames, 3)), "body_pose": rng.normal(0, 0.5, (frames, 21, 3)),
              "jaw_pose": rng.normal(0, 0.2, (frames, 3)), "left_hand_pose": rng.normal(0, 0.4, (frames, 15, 3)),
              "right_hand_pose": rng.normal(0, 0.4, (frames, 15, 3))}
    pose = full_pose(params, frames)
    assert pose.shape == (frames, 55, 3) and np.all(pose[:, 23:25] == 0)  # eyes absent
    root = rng.normal(0, 1, (frames, 3))
    write_bvh(tmp_path / "m.bvh", pose, root, rest, parents, names, fps=25.0)
    write_amass_npz(tmp_path / "m.npz", pose, root, np.zeros(10), 25.0)
    got_names, got_parents, offsets, channels, frame_time, data = _read_bvh(tmp_path / "m.bvh")
    assert frame_time == pytest.approx(0.04)
    index = {n: i for i, n in enumerate(got_names)}
    assert sorted(got_names) == sorted(names)
    for i, n in enumerate(got_names):  # same tree, offsets in cm
        j = names.index(n)
        assert got_parents[i] == (-1 if parents[j] < 0 else index[names[parents[j]]])
        if parents[j] >= 0:
            np.testing.assert_allclose(offsets[i], (rest[j] - rest[parents[j]]) * 100, atol=1e-5)
    amass = np.load(tmp_path / "m.npz")
    assert amass["poses"].shape == (frames, 165) and str(amass["surface_model_type"]) == "smplx"
    assert float(amass["mocap_framerate"]) == 25.0
    np.testing.assert_allclose(data[:, :3], root * 100, atol=1e-5)
    col = 3
    for i, n in enumerate(got_names):
        j = names.index(n)
        for f in range(frames):
            want = _rodrigues(amass["poses"][f].reshape(55, 3)[j])
            np.testing.assert_allclose(_euler(channels[i][-3:], data[f, col:col + 3]), want, atol=1e-5)
        col += 3


def test_y_up_frame_keeps_the_mesh():
    """``v = R'(x - J0) + J0 + trans'`` equals the flipped camera-frame vertex ``F (R(x - J0) + J0 + T)``."""
    rng = np.random.default_rng(4)
    aa, cam_t, pelvis = rng.normal(0, 1, (3, 3)), rng.normal(0, 1, (3, 3)), rng.normal(0, 0.2, 3)
    x = rng.normal(0, 0.5, 3)
    new_aa, trans = to_y_up(aa, cam_t, pelvis)
    flip = np.diag([1.0, -1, -1])
    for f in range(3):
        camera = _rodrigues(aa[f]) @ (x - pelvis) + pelvis + cam_t[f]
        np.testing.assert_allclose(_rodrigues(new_aa[f]) @ (x - pelvis) + pelvis + trans[f], flip @ camera, atol=1e-9)


# -- expose fetch detector -------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_install_detector_checks_the_member(tmp_path):
    import hashlib

    from expose_cli.assets.detector_model import install_detector

    onnx_bytes = b"pretend onnx" * 100
    good = hashlib.sha256(onnx_bytes).hexdigest()
    archive = _zip(tmp_path / "a.zip", {"20230831/rtmdet/end2end.onnx": onnx_bytes, "20230831/rtmdet/deploy.json": b"{}"})
    dest = tmp_path / "data" / "detectors" / "person.onnx"
    assert install_detector(archive, dest, expected_sha256=good).read_bytes() == onnx_bytes
    dest.unlink()
    with pytest.raises(ExposeError, match="sha256"):
        install_detector(archive, dest, expected_sha256="0" * 64)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # nothing half-written left
    # a member name that tries to leave the tree is read, never used as a path
    evil = _zip(tmp_path / "evil.zip", {"../../outside/end2end.onnx": onnx_bytes})
    install_detector(evil, dest, expected_sha256=good)
    assert not (tmp_path.parent / "outside").exists()
    with pytest.raises(ExposeError, match="expected one end2end.onnx"):
        install_detector(_zip(tmp_path / "none.zip", {"model.onnx": b"x"}), dest, expected_sha256=good)
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ExposeError, match="cannot read the detector archive"):
        install_detector(tmp_path / "bad.zip", dest, expected_sha256=good)


def test_fetch_detector_cli(tmp_path, run_cli, monkeypatch):
    import hashlib
    import io
    import zipfile
    from urllib.parse import urlsplit

    from expose_cli.assets import detector_model
    from tests.http_server import FileServer

    onnx_bytes = b"tiny detector" * 50
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("sdk/end2end.onnx", onnx_bytes)
    monkeypatch.setattr(detector_model, "ONNX_SHA256", hashlib.sha256(onnx_bytes).hexdigest())
    server = FileServer()
    base = server.start()
    try:
        server.files[urlsplit(detector_model.ARCHIVE_URL).path] = buf.getvalue()
        result = run_cli("--data-dir", tmp_path, "fetch", "detector", "--mirror", base)
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    assert (tmp_path / "detectors" / "rtmdet_nano_person.onnx").read_bytes() == onnx_bytes


# -- the whole path through `expose infer` -----------------------------------------------------------

class _TwoPersons(torch.nn.Module):
    """Always two persons, left and right, in a 320 x 320 letterboxed input."""

    def forward(self, x):
        n = x.shape[0]
        dets = torch.tensor([[10.0, 20.0, 140.0, 230.0, 0.9], [180.0, 30.0, 300.0, 220.0, 0.8]], dtype=x.dtype)
        return dets.expand(n, 2, 5) + 0 * x.mean(), torch.zeros(n, 2, dtype=torch.int64)


def test_video_tracks_smoothing_and_motion_files(infer_tree, tmp_path, run_cli):
    model = tmp_path / "two.onnx"
    torch.onnx.export(_TwoPersons(), (torch.zeros(1, 3, 320, 320),), str(model), input_names=["input"],
                      output_names=["dets", "labels"], dynamo=False)
    import cv2

    writer = cv2.VideoWriter(str(tmp_path / "walk.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(6):
        writer.write(np.full((240, 320, 3), 60 + 20 * i, np.uint8))
    writer.release()
    out = tmp_path / "o"
    res = run_cli("--data-dir", infer_tree, "-q", "infer", tmp_path / "walk.avi", "--out", out, "--render",
                  "--detector", f"onnx:{model}", "--format", "json")
    assert res.exit_code == 0, res.output
    tracks = json.loads((out / "walk" / "tracks.json").read_text())
    assert [t["id"] for t in tracks["tracks"]] == [0, 1] and tracks["smoothing"] == "savgol"
    assert all(t["frames"] == list(range(6)) for t in tracks["tracks"])
    assert all(f["track_ids"] == [0, 1] for f in tracks["frames"])  # largest box first, every frame
    assert json.loads((out / "walk" / "frame_000003" / "result.json").read_text())["track_ids"] == [0, 1]
    track = out / "walk" / "tracks" / "track_001"
    params = np.load(track / "params.npz")
    assert params["frames"].tolist() == list(range(6)) and params["body_pose"].shape == (6, 21, 3)
    amass = np.load(track / "motion.npz")
    assert amass["poses"].shape == (6, 165) and amass["trans"].shape == (6, 3)
    assert float(amass["mocap_framerate"]) == pytest.approx(10.0)
    names, _, _, channels, frame_time, data = _read_bvh(track / "motion.bvh")
    assert len(names) == 55 and names[0] == "pelvis" and data.shape == (6, 3 + 55 * 3)  # root position, then 3 angles per joint
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"][0]["tracks"] == 2 and summary["failed"] == 0
    assert (out / "walk" / "overlay.mp4").is_file()


def test_detector_choices_on_the_command_line(infer_tree, tmp_path, run_cli):
    import cv2

    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((120, 90, 3), 128, np.uint8))
    res = run_cli("--data-dir", infer_tree, "infer", tmp_path / "a.jpg", "--out", tmp_path / "o", "--format", "json")
    assert "expose fetch detector" in res.stderr and "HOG" in res.stderr  # no detector file: HOG, with a warning
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    res = run_cli("--data-dir", infer_tree, "infer", tmp_path / "a.jpg", "--out", tmp_path / "o2",
                  "--detector", f"onnx:{tmp_path / 'junk.onnx'}")
    assert res.exit_code != 0 and "junk.onnx" in res.stderr and "not a usable ONNX model" in res.stderr
    assert not (tmp_path / "o2").exists()


def test_overlay_video_written_as_frames_come_equals_one_written_at_once(tmp_path):
    """``overlay.mp4`` encoded frame by frame as infer draws them (frame numbers with gaps, as with
    ``--every``) has the bytes of the frames written in one go by OpenCV; a frame out of order fails
    the video with its reason and leaves no file; an interrupted run leaves nothing behind."""
    from expose_cli.inference.overlay_video import OverlayVideos

    rng = np.random.default_rng(3)
    frames = [(rng.random((48, 64, 3)) * 255).astype(np.uint8) for _ in range(5)]
    (tmp_path / "ref").mkdir()
    writer = cv2.VideoWriter(str(tmp_path / "ref" / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for frame in frames:
        writer.write(frame)
    writer.release()
    videos = OverlayVideos()
    for number, frame in zip([0, 2, 4, 6, 8], frames, strict=True):
        videos.add(tmp_path, number, 10.0, frame)
    assert videos.folders == [tmp_path]
    assert videos.finish(tmp_path) == tmp_path / "overlay.mp4"
    assert (tmp_path / "overlay.mp4").read_bytes() == (tmp_path / "ref" / "overlay.mp4").read_bytes()
    (tmp_path / "overlay.mp4").unlink()
    videos = OverlayVideos()  # out of order: the video's error, no file
    for number in (0, 2, 1, 3):
        videos.add(tmp_path, number, 10.0, frames[number])
    with pytest.raises(OSError, match="frame 1 came after frame 2"):
        videos.finish(tmp_path)
    assert list(tmp_path.glob("*overlay*")) == [] and videos.folders == []
    videos = OverlayVideos()  # interrupted: nothing left behind
    videos.add(tmp_path, 0, 10.0, frames[0])
    assert [p.name for p in tmp_path.glob(".overlay.*")] != []  # the temporary file being written
    videos.drop()
    assert list(tmp_path.glob(".overlay.*")) == [] and not (tmp_path / "overlay.mp4").exists()
