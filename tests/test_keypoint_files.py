"""Keypoint files read onto the SMPL-X order (body_models/keypoint_files.py).

The expected indices come from the published definitions, written here by hand: COCO-WholeBody
(17 body in COCO order, 6 feet, 68 face, 21 left hand, 21 right hand), OpenPose BODY_25 and its
hand (wrist, then thumb..pinky base to tip) and face files, H3.6M's 17 joints, and the SMPL-X joint
order of the ``smplx`` package (0 pelvis, 12 neck, 20/21 left/right wrist, 25 left_index1,
55 nose, 60 left_big_toe, 65 right_heel, 66 left_thumb tip, 71 right_thumb tip; face landmarks from
76: 5 + 5 brows, 4 nose bridge, 5 lower nose (92 nose_middle), then 95 right_eye1 ...; 127-143 the
contour). Face points follow the iBUG 68 order: 0-16 contour, 17 right brow outer end, 33 the
middle of the lower nose, 36 the right eye's outer corner.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from expose_cli.body_models import keypoint_files as kf
from expose_cli.errors import ExposeError

#: (source index -> SMPL-X index) picked by hand from the published definitions.
WHOLEBODY_TO_SMPLX = {0: 55, 9: 20, 10: 21, 17: 60, 22: 65, 95: 66, 96: 25, 116: 71,
                      23 + 0: 127, 23 + 17: 76, 23 + 33: 92, 23 + 36: 95}
OPENPOSE137_TO_SMPLX = {1: 12, 4: 21, 7: 20, 8: 0, 19: 60, 24: 65, 25 + 4: 66, 46 + 4: 71, 67 + 0: 127, 67 + 33: 92}
H36M_TO_SMPLX = {0: 0, 13: 20, 16: 21}


def _marked(k: int, c: int = 3) -> np.ndarray:
    """One person whose point i sits at (i, 300 + i), confidence 0.5 (z = -i for 3D)."""
    pts = np.zeros((1, k, c))
    pts[0, :, 0], pts[0, :, 1], pts[0, :, -1] = np.arange(k), 300 + np.arange(k), 0.5
    if c == 4:
        pts[0, :, 2] = -np.arange(k)
    return pts


@pytest.mark.parametrize("convention,k,table", [("coco_wholebody", 133, WHOLEBODY_TO_SMPLX),
                                                ("openpose_137", 137, OPENPOSE137_TO_SMPLX),
                                                ("h36m", 17, H36M_TO_SMPLX)])
def test_hand_picked_correspondences(tmp_path, convention, k, table):
    path = tmp_path / "k.npz"
    np.savez(path, keypoints=_marked(k), convention=convention)
    got = kf.read_keypoints(path)
    assert got.convention == convention and got.smplx.shape == (1, 144, 3) and got.valid.tolist() == [True]
    for src, dst in table.items():
        np.testing.assert_allclose(got.smplx[0, dst], [src, 300 + src, 0.5])
        assert got.mask[dst]
    assert not got.mask[22]  # jaw: no 2D convention has it
    assert (got.smplx[0, ~got.mask] == 0).all()
    assert got.mask.sum() == {"coco_wholebody": 17 + 6 + 68 + 40, "openpose_137": 25 + 40 + 68, "h36m": 13}[convention]


def test_hand_roots_and_h36m_extras_are_not_smplx_points(tmp_path):
    np.save(tmp_path / "h.npy", _marked(17))
    got = kf.read_keypoints(tmp_path / "h.npy", convention="h36m")
    for src in (7, 8, 9, 10):  # spine, thorax, head, head top: not SMPL-X joints
        assert not (got.smplx[0, :, 0] == src).any()
    np.save(tmp_path / "w.npy", _marked(133))
    wb = kf.read_keypoints(tmp_path / "w.npy")  # 133 points: COCO-WholeBody
    assert not (wb.smplx[0, :, 0] == 91).any() and not (wb.smplx[0, :, 0] == 112).any()


def test_smplx_joints_and_3d_sequences(tmp_path):
    seq = np.concatenate([_marked(127, 4)] * 6).reshape(2, 3, 127, 4)  # persons x frames
    seq[1, 2, :, 3] = 0
    np.save(tmp_path / "j.npy", seq)
    got = kf.read_keypoints(tmp_path / "j.npy")
    assert got.convention == "smplx" and got.smplx.shape == (2, 3, 144, 4) and got.mask.sum() == 127
    np.testing.assert_allclose(got.smplx[1, 1, 20], [20, 320, -20, 0.5])
    assert got.valid.tolist() == [[True] * 3, [True, True, False]] and got.persons == 2
    assert got.problems == [f"{tmp_path / 'j.npy'}: person 1 frame 2: all confidences are zero"]
    points, valid = got.persons_frames()
    assert points.shape == (2, 3, 144, 4) and valid.shape == (2, 3)
    np.save(tmp_path / "one.npy", _marked(144))
    points, valid = kf.read_keypoints(tmp_path / "one.npy").persons_frames()
    assert points.shape == (1, 1, 144, 3) and valid.tolist() == [[True]]


def _openpose_person(scale: float, hands: bool = True) -> dict:
    body = [[10 * i * scale, 5 * i, 0.9] for i in range(25)]
    left = [[i, i, 0.7] for i in range(21)] if hands else []
    right = [[100 + i, i, 0.7] for i in range(21)] if hands else []
    return {"person_id": [-1], "pose_keypoints_2d": sum(body, []), "face_keypoints_2d": sum([[1, 2, 0.3]] * 70, []),
            "hand_left_keypoints_2d": sum(left, []), "hand_right_keypoints_2d": sum(right, []),
            "pose_keypoints_3d": [], "face_keypoints_3d": [], "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": []}


def test_openpose_json(tmp_path):
    path = tmp_path / "img_000000000000_keypoints.json"
    path.write_text(json.dumps({"version": 1.3, "people": [_openpose_person(1.0), _openpose_person(2.0, hands=False)]}))
    got = kf.read_keypoints(path)
    assert got.convention == "openpose_137" and got.points.shape == (2, 137, 3) and got.valid.all()
    assert kf.check_image(got, (480, 640), "frames/img_000000000000.png") == []  # OpenPose names files after the image
    assert "a file for another image" in kf.check_image(got, (480, 640), "frames/img_000000000001.png")[0]
    np.testing.assert_allclose(got.smplx[1, 21], [80, 20, 0.9])  # BODY_25 4 = right wrist
    np.testing.assert_allclose(got.smplx[0, 66], [4, 4, 0.7])  # left hand 4 = thumb tip
    np.testing.assert_allclose(got.smplx[0, 71], [104, 4, 0.7])  # right hand 4
    assert got.smplx[1, 66, 2] == 0  # hands not run for person 1: confidence 0
    # OpenPose's COCO-18 body model is another convention: one line naming the file
    coco18 = _openpose_person(1.0)
    coco18["pose_keypoints_2d"] = coco18["pose_keypoints_2d"][:54]
    path.write_text(json.dumps({"people": [coco18]}))
    with pytest.raises(ExposeError, match="COCO-18") as info:
        kf.read_keypoints(path)
    assert str(path) in info.value.message and "\n" not in str(info.value) and info.value.exit_code == 2


def test_bad_persons_are_named_and_the_others_kept(tmp_path):
    pts = np.concatenate([_marked(133)] * 3)
    pts[1, 5, 0] = np.nan
    pts[2, :, 2] = 0
    np.save(tmp_path / "p.npy", pts)
    got = kf.read_keypoints(tmp_path / "p.npy")
    assert got.valid.tolist() == [True, False, False]
    assert got.problems == [f"{tmp_path / 'p.npy'}: person 1: NaN or infinite values",
                            f"{tmp_path / 'p.npy'}: person 2: all confidences are zero"]
    assert np.isfinite(got.smplx).all()
    assert got.smplx[1, 20].tolist() == [9, 309, 0.5] and (got.smplx[1, 16] == 0).all()  # the NaN point (COCO 5, left shoulder) unseen


@pytest.mark.parametrize("array,convention,message", [
    (np.zeros((1, 17, 3)), None, "could be several conventions"),
    (np.zeros((1, 25, 3)), "coco_wholebody", "25 points per person, but coco_wholebody has 133"),
    (np.zeros((1, 133, 2)), None, "2 numbers per point"),
    (np.zeros((2, 1, 1, 133, 3)), None, "keypoints of shape"),
    (np.zeros((1, 133, 3)), "mano", "unknown keypoint convention"),
])
def test_bad_array_files(tmp_path, array, convention, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ExposeError, match=message) as info:
        kf.read_keypoints(path, convention=convention)
    assert info.value.message.startswith(str(path)) and info.value.exit_code == 2


def test_unreadable_files(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    (tmp_path / "b.json").write_text(json.dumps({"annotations": []}))
    (tmp_path / "c.txt").write_text("1 2 3")
    for name, message in (("a.json", "cannot read JSON"), ("b.json", "not a keypoint file"),
                          ("c.txt", "unknown keypoint file type"), ("missing.json", "not found")):
        with pytest.raises(ExposeError, match=message) as info:
            kf.read_keypoints(tmp_path / name)
        assert name in info.value.message


def test_expose_keypoints_round_trip_and_image_check(tmp_path):
    pts = _marked(133)[0][None].repeat(2, axis=0) + np.array([0.12345, 0, 0])
    boxes = [[1, 2, 30, 40, 0.9], [5, 6, 70, 80, 0.8]]
    path = kf.write_keypoints_json(tmp_path / "keypoints.json", pts, image="a.jpg", image_size=(480, 640),
                                   boxes=boxes, model="tiny.onnx")
    got = kf.read_keypoints(path)
    assert got.convention == "coco_wholebody" and got.image == "a.jpg" and got.image_size == (480, 640)
    np.testing.assert_allclose(got.points, pts, atol=5e-4)  # written to 3 decimals (px)
    np.testing.assert_allclose(got.boxes, np.array(boxes)[:, :4])
    assert kf.check_image(got, (480, 640)) == [] == kf.check_image(got, (480, 640), tmp_path / "a.jpg")
    assert "not of b.jpg" in kf.check_image(got, (480, 640), tmp_path / "b.jpg")[0]
    assert "another image" in kf.check_image(got, (480, 641))[0]
    np.savez(tmp_path / "sized.npz", keypoints=pts, image_size=[480, 641], image="b.jpg")
    sized = kf.read_keypoints(tmp_path / "sized.npz")
    assert sized.image == "b.jpg" and "another image" in kf.check_image(sized, (480, 640))[0]
    far = tmp_path / "far.npy"
    np.save(far, pts + np.array([5000.0, 0, 0]))
    assert "outside" in kf.check_image(kf.read_keypoints(far), (480, 640))[0]


def test_coco_wholebody_results_and_mmpose_predictions(tmp_path):
    pts = _marked(133)[0]
    parts, start = {}, 0
    for key, n in (("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21), ("righthand_kpts", 21)):
        parts[key] = pts[start:start + n].reshape(-1).tolist()
        start += n
    (tmp_path / "res.json").write_text(json.dumps([dict(parts, image_id=1, category_id=1, score=0.9, bbox=[10, 20, 30, 40])]))
    got = kf.read_keypoints(tmp_path / "res.json")
    np.testing.assert_allclose(got.points[0], pts)
    np.testing.assert_allclose(got.boxes, [[10, 20, 40, 60]])  # x, y, w, h -> x1, y1, x2, y2
    pred = {"meta_info": {}, "instance_info": [{"keypoints": pts[:, :2].tolist(), "keypoint_scores": pts[:, 2].tolist()}]}
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    got = kf.read_keypoints(tmp_path / "pred.json")
    assert got.convention == "coco_wholebody"
    np.testing.assert_allclose(got.smplx[0, 20], [9, 309, 0.5])


def test_openpose_frames_as_a_sequence(tmp_path):
    frames = [[_openpose_person(1.0), _openpose_person(2.0)], [_openpose_person(1.5)], [_openpose_person(1.0)] * 2]
    frames[2][1] = dict(frames[2][1], pose_keypoints_2d=[float("nan")] * 75)
    for t, people in enumerate(frames):
        (tmp_path / f"clip_{t:012d}_keypoints.json").write_text(json.dumps({"people": people}))
    seq = kf.read_keypoint_sequence(tmp_path)
    assert seq.points.shape == (2, 3, 137, 3) and seq.convention == "openpose_137"
    np.testing.assert_allclose(seq.smplx[0, 1, 21], [60, 20, 0.9])  # frame 1, person 0: right wrist 4 * 10 * 1.5
    assert seq.valid.tolist() == [[True, True, True], [True, False, False]]  # absent in frame 1, NaN in frame 2
    assert seq.problems == [f"{tmp_path / 'clip_000000000002_keypoints.json'}: person 1: NaN or infinite values"]
    points, valid = seq.persons_frames()
    assert points.shape == (2, 3, 144, 3) and valid.shape == (2, 3)
    (tmp_path / "other.npy").write_bytes(b"")
    with pytest.raises(ExposeError, match="cannot read the array file"):
        kf.read_keypoint_sequence(tmp_path)
