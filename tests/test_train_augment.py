"""The seed's augmentations (expose_cli/training/augment.py), each against hand-computed values.

A stub generator returns chosen draws, so each expectation is worked out by hand below.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from expose_cli.body_models.keypoints import flip_keypoints, get_convention
from expose_cli.training import augment as A
from expose_cli.training.data_config import AugmentConfig, DataConfig, data_preset
from expose_cli.training.sample import Record, SourceImage, augment_geometry, make_sample


class FixedRng:
    """Stands in for ``numpy.random.Generator``: returns the queued values in order."""

    def __init__(self, *values):
        self.values = list(values)

    def _next(self, shape=None):
        v = self.values.pop(0)
        return np.asarray(v, np.float64) if shape is not None else float(v)

    def uniform(self, low, high, size=None):
        return self._next(size)

    def standard_normal(self, size=None):
        return self._next(size)

    def random(self, size=None):
        return self._next(size)

    def integers(self, n, size=None):
        return int(self.values.pop(0))


def test_presets_are_the_seeds():
    body, hand, face, full = (data_preset(k) for k in ("body", "hand", "face", "expose"))
    assert body.members == ("curated_fits", "spin_smplx", "h36m_smplx") and body.ratios == (0.08, 0.12, 0.80)
    assert (body.img_res, hand.img_res, face.img_res, full.img_res) == (256, 224, 256, 256)
    assert body.augment.jitter_factor == 0 and body.augment.flip_prob == 0.5 and body.augment.scale_factor == 0.25
    assert hand.augment.flip_prob == 0 and hand.augment.jitter_factor == 0.2 and hand.augment.scale_factor == 0.2
    assert hand.augment.low_res_factors == (1.0, 1.2, 1.5, 2.0, 3.0, 4.0)
    assert face.augment.low_res_factors[-1] == 8.0 and face.augment.flip_prob == 0.5
    assert full.augment.rotate_full_image and not body.augment.rotate_full_image
    assert all(p.augment.rot_factor == 30 and p.augment.rot_prob == 0.6 and p.augment.noise_factor == 0.4
               for p in (body, hand, face, full))
    with pytest.raises(ValueError):
        DataConfig(members=("a",), ratios=(1.0, 2.0))


def test_jitter_center():
    c, s = np.array([50.0, 40.0]), np.array([100.0, 100.0])
    # factor 0.2 -> j = 20 px; uniform draws (+10, -20)
    assert np.allclose(A.jitter_center(c, s, 0.2, "uniform", (80, 120), FixedRng([10.0, -20.0])), [60, 20])
    # normal: j * N -> 20 * (3, -3) = (+60, -60), then clipped to [0, W] x [0, H] = [0, 120] x [0, 80]
    assert np.allclose(A.jitter_center(c, s, 0.2, "normal", (80, 120), FixedRng([4.0, -3.0])), [120, 0])
    assert np.allclose(A.jitter_center(c, s, 0.0, "uniform", (80, 120), FixedRng()), c)  # no draw


def test_flip_keypoints_swap_by_name_and_mirror():
    conv = get_convention("smplx")
    kp = np.zeros((144, 3))
    kp[conv.index("left_wrist")] = (10, 20, 1)
    kp[conv.index("nose")] = (30, 5, 1)
    out = flip_keypoints(kp, "smplx", 100)
    assert np.allclose(out[conv.index("right_wrist")], (89, 20, 1))  # 100 - 1 - 10
    assert np.allclose(out[conv.index("nose")], (69, 5, 1))
    assert out[conv.index("left_wrist"), 2] == 0
    kp3 = np.zeros((144, 4))
    kp3[conv.index("left_index1")] = (0.3, -0.2, 2.0, 1)
    out3 = flip_keypoints(kp3, "smplx")
    assert np.allclose(out3[conv.index("right_index1")], (-0.3, -0.2, 2.0, 1))
    mano = np.arange(21 * 3, dtype=float).reshape(21, 3)
    assert np.allclose(flip_keypoints(mano, "mano", 10)[:, 1], mano[:, 1])  # one side only: no swap


def test_flip_params_mirror_and_swap():
    body = np.zeros((21, 3))
    body[0] = (0.1, 0.2, 0.3)  # body_pose[0] = joint 1 = left_hip
    body[2] = (0.5, 0.5, 0.5)  # joint 3 = spine1 (centre: stays)
    left, right = np.full((15, 3), 0.1), np.full((15, 3), -0.7)
    p = {"global_orient": np.array([1.0, 2.0, 3.0]), "jaw_pose": np.array([0.2, 0.1, 0.0]), "body_pose": body,
         "left_hand_pose": left, "right_hand_pose": right, "betas": np.ones(10), "expression": np.ones(10),
         "has_left_hand_pose": np.float32(1), "has_right_hand_pose": np.float32(0), "has_expression": np.float32(1)}
    out = A.flip_params(p)
    assert np.allclose(out["global_orient"], [1, -2, -3]) and np.allclose(out["jaw_pose"], [0.2, -0.1, 0])
    assert np.allclose(out["body_pose"][1], [0.1, -0.2, -0.3]) and np.allclose(out["body_pose"][0], 0)
    assert np.allclose(out["body_pose"][2], [0.5, -0.5, -0.5])
    assert np.allclose(out["right_hand_pose"], [0.1, -0.1, -0.1]) and np.allclose(out["left_hand_pose"], [-0.7, 0.7, 0.7])
    assert out["has_right_hand_pose"] == 1 and out["has_left_hand_pose"] == 0  # MMHuman3D forgets this swap
    assert np.all(out["expression"] == 0) and out["has_expression"] == 0 and np.all(out["betas"] == 1)
    assert np.allclose(p["global_orient"], [1, 2, 3])  # input untouched


def test_random_scale_rotation():
    # N draws 0.5 (scale) and 3.0 (rotation), U draw 0.3 < 0.6: rotate
    s, r = A.random_scale_rotation(np.array([200.0, 200.0]), 0.25, 30.0, 0.6, FixedRng(0.5, 3.0, 0.3))
    assert np.allclose(s, 200 * 1.125) and r == 60.0  # 30 * 3 = 90 clipped to 2 * 30
    s, r = A.random_scale_rotation(np.array([200.0, 200.0]), 0.25, 30.0, 0.6, FixedRng(-9.0, -1.0, 0.7))
    assert np.allclose(s, 200 * 0.75) and r == 0.0  # 1 - 2.25 clipped to 0.75; 0.7 >= 0.6: no rotation


def test_mesh_affine_by_hand():
    t = A.mesh_affine(np.array([100.0, 50.0]), np.array([200.0, 200.0]), 0.0, 256)
    pts = A.transform_keypoints2d(np.array([[100, 50, 1], [200, 50, 1], [0, 150, 1], [5, 5, 0]], float), t)
    assert np.allclose(pts[:3, :2], [[128, 128], [256, 128], [0, 256]], atol=1e-4)
    assert np.all(pts[3] == 0)  # confidence 0: not mapped
    # 90 degrees counter-clockwise: the point 100 px above the centre goes to the left edge
    t90 = A.mesh_affine(np.array([100.0, 50.0]), np.array([200.0, 200.0]), 90.0, 256)
    assert np.allclose(A.transform_keypoints2d(np.array([[100, -50, 1.0]]), t90)[0, :2], [0, 128], atol=1e-3)


def test_rotation_affine_whole_image():
    m, size = A.rotation_affine((100, 200), 90.0)  # H=100, W=200
    assert size == (200, 100)
    pts = A.transform_keypoints2d(np.array([[100, 50, 1], [200, 50, 1]], float), m)
    # centre -> centre of the new canvas; the right edge's midpoint (ccw) -> the top edge's midpoint
    assert np.allclose(pts[:, :2], [[50, 100], [50, 0]], atol=1e-6)
    assert np.allclose(A.rotate_keypoints3d(np.array([[1.0, 0, 2, 1]]), 90.0), [[0, -1, 2, 1]], atol=1e-12)
    go = A.rotate_global_orient(np.zeros(3), 90.0)  # R' = R_z(-90)
    assert np.allclose(go, [0, 0, -np.pi / 2], atol=1e-9)


def test_channel_noise_low_res_normalize():
    img = np.full((2, 2, 3), 100, np.uint8)
    out = A.channel_noise(img, np.array([0.5, 1.0, 3.0]))
    assert out.dtype == np.uint8 and out[0, 0].tolist() == [50, 100, 255]  # saturated
    row = np.zeros((1, 4, 3), np.uint8)
    row[0, 2:] = 200
    # nearest down to 2 px: (0, 200); exact bilinear back to 4: 0, 50, 150, 200
    assert A.simulate_low_res(row, 2.0)[0, :, 0].tolist() == [0, 50, 150, 200]
    assert A.low_res_factor((1.0,), FixedRng()) == 1.0  # a single factor: no draw
    assert A.low_res_factor((1.0, 2.0, 4.0), FixedRng(2)) == 4.0
    px = np.array([[[182, 116, 0]]], np.uint8)
    out = A.normalize(px, AugmentConfig().mean, AugmentConfig().std)
    # (182 - 123.675) / 58.395, (116 - 116.28) / 57.12, (0 - 103.53) / 57.375
    assert out.shape == (3, 1, 1) and np.allclose(out[:, 0, 0], [0.998801, -0.004902, -1.804444], atol=1e-6)


def _record(width=200, height=100, conv="smplx"):
    k = len(get_convention(conv))
    kp2d = np.zeros((k, 3))
    kp3d = np.zeros((k, 4))
    params = {"global_orient": np.zeros(3), "body_pose": np.zeros((21, 3)), "jaw_pose": np.zeros(3),
              "left_hand_pose": np.full((15, 3), 0.1), "right_hand_pose": np.zeros((15, 3)),
              "betas": np.zeros(10), "expression": np.ones(10)}
    has = {"global_orient": 1.0, "body_pose": 1.0, "left_hand_pose": 1.0, "right_hand_pose": 0.0,
           "jaw_pose": 1.0, "betas": 0.0, "expression": 1.0}
    return Record(np.array([width / 2, height / 2]), np.array([80.0, 80.0]), (height, width), kp2d, kp3d,
                  params, has, conv)


def test_sample_flip_swaps_hand_flags_and_marker_follows_keypoint():
    rec = _record()
    conv = get_convention("smplx")
    rec.keypoints2d[conv.index("left_wrist")] = (120, 40, 1)
    image = np.zeros((100, 200, 3), np.uint8)
    cv2.circle(image, (120, 40), 2, (255, 255, 255), -1)
    aug = AugmentConfig(flip_prob=1.0, scale_factor=0.0, rot_factor=20.0, rot_prob=1.0, noise_factor=0.0)
    sample = make_sample(rec, SourceImage(image, np.array([[1.0, 0, 0], [0, 1, 0]])), aug, 64,
                         np.random.default_rng(3))
    assert sample["has_right_hand_pose"] == 1 and sample["has_left_hand_pose"] == 0
    assert sample["has_expression"] == 0 and float(sample["expression"].abs().sum()) == 0
    x, y = sample["keypoints2d"][conv.index("right_wrist"), :2].tolist()
    img = sample["img"].numpy()[0]
    yy, xx = np.unravel_index(np.argmax(img), img.shape)
    assert abs(xx - x) <= 1.0 and abs(yy - y) <= 1.0  # the image moved with the (flipped, rotated) keypoint


@pytest.mark.parametrize("embedded", [False, True])
def test_full_model_rotation_keeps_ori_img_and_crop_transform_consistent(embedded):
    rec = _record()
    conv = get_convention("smplx")
    rec.keypoints2d[conv.index("nose")] = (90, 30, 1)
    image = np.zeros((100, 200, 3), np.uint8)
    cv2.circle(image, (90, 30), 2, (255, 255, 255), -1)
    src = SourceImage(image, np.array([[1.0, 0, 0], [0, 1, 0]]))
    if embedded:  # a stored 120 px crop of side 160 around the box centre, as --embed-images writes
        affine = A.mesh_affine(rec.center, np.array([160.0, 160.0]), 0.0, 120)
        src = SourceImage(A.warp(image, affine, (120, 120)), affine)
    aug = AugmentConfig(flip_prob=1.0, scale_factor=0.0, rot_factor=20.0, rot_prob=1.0, noise_factor=0.0,
                        rotate_full_image=True)
    s = make_sample(rec, src, aug, 64, np.random.default_rng(1), with_full_image=True)
    ori = s["ori_img"].numpy()[0]
    oy, ox = np.unravel_index(np.argmax(ori), ori.shape)
    crop_xy = A.transform_keypoints2d(np.array([[ox, oy, 1.0]]), s["crop_transform"].numpy())[0, :2]
    assert np.allclose(crop_xy, s["keypoints2d"][conv.index("nose"), :2].numpy(), atol=1.5)
    assert tuple(s["ori_size"].tolist()) == ori.shape and ori.shape != (100, 200)  # enlarged canvas
    if embedded:  # only what the stored crop covers (160 original px, rotated), not the whole image's
        assert max(ori.shape) < 200  # rotated canvas, whose width is >= 200 for |rot| <= 53 degrees


def test_rotation_consistency_projected_3d_vs_rotated_2d():
    """Rotate a crop whose centre is the principal point: projecting the rotated 3D keypoints and
    mapping them with the UNROTATED crop affine must give the rotated 2D keypoints."""
    rng = np.random.default_rng(0)
    f, pp = 500.0, np.array([160.0, 120.0])
    k = len(get_convention("smplx"))
    xyz = np.c_[rng.uniform(-0.5, 0.5, (k, 2)), rng.uniform(3.0, 4.0, k)]
    rec = _record(320, 240)
    rec.center = pp.copy()
    rec.scale = np.array([200.0, 200.0])
    rec.keypoints3d = np.c_[xyz, np.ones(k)]
    rec.keypoints2d = np.c_[xyz[:, :2] / xyz[:, 2:] * f + pp, np.ones(k)]
    rec.params["global_orient"] = np.array([0.3, -0.2, 0.1])
    for full in (False, True):
        aug = AugmentConfig(flip_prob=0.0, scale_factor=0.0, rot_factor=30.0, rot_prob=1.0, rotate_full_image=full)
        out, t, g, _, draws = augment_geometry(rec, aug, 256, np.random.default_rng(5))
        r = draws["rot"]
        assert abs(r) > 5
        proj = out.keypoints3d[:, :2] / out.keypoints3d[:, 2:3] * f + pp
        if full:  # the whole image rotated about its centre (W/2, H/2) = pp: still the principal point
            proj = A.transform_keypoints2d(np.c_[proj, np.ones(k)], np.eye(3)[:2])[:, :2]
        unrotated = A.mesh_affine(pp, rec.scale, 0.0, 256)
        mapped = A.transform_keypoints2d(np.c_[proj, np.ones(k)], unrotated)[:, :2]
        assert np.allclose(mapped, out.keypoints2d[:, :2], atol=1e-3)
        expected = cv2.Rodrigues(A.rotation_z(r) @ cv2.Rodrigues(rec.params["global_orient"])[0])[0].ravel()
        assert np.allclose(out.params["global_orient"], expected, atol=1e-6)
