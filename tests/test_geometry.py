"""Rotations, crops, cameras and Procrustes against hand-computed values and identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from expose_cli.geometry import cameras, crops, procrustes
from expose_cli.geometry import rotations as rot

D = torch.float64


def random_axis_angle(n: int, max_angle: float = math.pi, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=D), dim=-1)
    return axis * torch.rand(n, 1, generator=g, dtype=D) * max_angle


def test_axis_angle_matrix_hand_computed():
    # 90 degrees about z maps x to y.
    R = rot.axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=D))
    expected = torch.tensor([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=D)
    torch.testing.assert_close(R, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-3, 1.0, math.pi - 1e-6, math.pi])
def test_round_trips_edge_angles(angle):
    axes = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 2, 3], [-1, 0.5, 2]], dtype=D), dim=-1)
    aa = axes * angle
    R = rot.axis_angle_to_matrix(aa)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=D).expand(4, 3, 3), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(4, dtype=D), atol=1e-12, rtol=0)
    back = rot.axis_angle_to_matrix(rot.matrix_to_axis_angle(R))
    torch.testing.assert_close(back, R, atol=1e-9, rtol=0)
    if angle < math.pi - 1e-3:  # below pi the axis-angle itself is unique
        torch.testing.assert_close(rot.matrix_to_axis_angle(R), aa, atol=1e-9, rtol=0)


def test_quaternion_round_trips():
    aa = random_axis_angle(500, math.pi * 0.999)
    q = rot.axis_angle_to_quaternion(aa)
    torch.testing.assert_close(rot.quaternion_to_axis_angle(q), aa, atol=1e-9, rtol=0)
    R = rot.quaternion_to_matrix(q)
    torch.testing.assert_close(R, rot.axis_angle_to_matrix(aa), atol=1e-12, rtol=0)
    q2 = rot.matrix_to_quaternion(R)
    torch.testing.assert_close(q2, q * torch.sign(q[..., :1]), atol=1e-9, rtol=0)


def test_rot6d_gram_schmidt_hand_computed():
    # Row-major 3x2: columns a1 = (2, 0, 0), a2 = (1, 3, 0): b1 = x, b2 = y, b3 = z.
    x = torch.tensor([2.0, 1.0, 0.0, 3.0, 0.0, 0.0], dtype=D)
    torch.testing.assert_close(rot.rot6d_to_matrix(x), torch.eye(3, dtype=D))
    # Columns a1 = (0, 1, 0), a2 = (-5, 7, 0): b1 = y, b2 = -x, b3 = y x -x = z.
    x = torch.tensor([0.0, -5.0, 1.0, 7.0, 0.0, 0.0], dtype=D)
    expected = torch.tensor([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=D)
    torch.testing.assert_close(rot.rot6d_to_matrix(x), expected)


def test_rot6d_round_trip():
    R = rot.axis_angle_to_matrix(random_axis_angle(200))
    six = rot.matrix_to_rot6d(R)
    assert six.shape == (200, 6)
    torch.testing.assert_close(six[:, 0], R[:, 0, 0])
    torch.testing.assert_close(six[:, 1], R[:, 0, 1])
    torch.testing.assert_close(rot.rot6d_to_matrix(six), R, atol=1e-12, rtol=0)


def test_numpy_input_accepted():
    R = rot.axis_angle_to_matrix(np.zeros((2, 3)))
    assert isinstance(R, torch.Tensor) and R.shape == (2, 3, 3)


def test_box_to_center_scale():
    center, scale = crops.bbox_xywh_to_center_scale([10, 20, 40, 100], aspect_ratio=1.0, scale_factor=1.25)
    np.testing.assert_allclose(center, [30, 70])
    np.testing.assert_allclose(scale, [125, 125])
    center, scale = crops.bbox_xywh_to_center_scale([[0, 0, 80, 20]], scale_factor=1.0)
    np.testing.assert_allclose(scale, [[80, 80]])
    np.testing.assert_allclose(crops.center_scale_to_bbox_xywh(center, scale), [[0, -30, 80, 80]])


def test_crop_affine_maps_box_onto_crop_and_back():
    center, scale = np.array([100.0, 50.0]), np.array([40.0, 40.0])
    A = crops.crop_affine(center, scale, 256)
    pts = np.array([[100.0, 50.0], [80.0, 30.0], [120.0, 70.0]])
    np.testing.assert_allclose(crops.transform_points(pts, A), [[128, 128], [0, 0], [256, 256]], atol=1e-4)
    Ainv = crops.crop_affine(center, scale, 256, inverse=True)
    np.testing.assert_allclose(crops.transform_points(crops.transform_points(pts, A), Ainv), pts, atol=1e-4)
    # Rotation by 90 degrees keeps the centre fixed and turns a point above it sideways.
    Ar = crops.crop_affine(center, scale, 256, rot=90)
    out = crops.transform_points(np.array([[100.0, 40.0], [100.0, 50.0]]), Ar)
    np.testing.assert_allclose(out[1], [128, 128], atol=1e-4)
    assert abs(np.linalg.norm(out[0] - out[1]) - 64) < 1e-3


def test_crop_image_puts_marker_where_affine_says():
    img = np.zeros((200, 300, 3), np.uint8)
    img[60, 110] = 255  # marker at x=110, y=60
    crop, A = crops.crop_image(img, np.array([100.0, 50.0]), np.array([64.0, 64.0]), 64)
    x, y = crops.transform_points(np.array([[110.0, 60.0]]), A)[0]
    yy, xx = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    assert (xx, yy) == (round(x), round(y))


def _smooth_image(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([80 + 60 * np.sin(xx / 23.0) * np.cos(yy / 31.0), 1.2 * xx % 256, 0.9 * yy + 20], axis=-1)
    return img.astype(np.float32)


@pytest.mark.parametrize("rot_deg", [0.0, 30.0])
def test_crop_then_uncrop_reproduces_the_box(rot_deg):
    img = _smooth_image(200, 300)
    center, scale = np.array([140.0, 90.0]), np.array([80.0, 80.0])
    crop, _ = crops.crop_image(img, center, scale, 160, rot=rot_deg)
    back, mask = crops.uncrop_image(crop, center, scale, img.shape[:2], rot=rot_deg)
    assert back.shape == img.shape and mask.shape == img.shape[:2]
    # The covered region is the (rotated) box: about 80 x 80 px around the centre, nothing far away.
    assert abs(mask.sum() - 80 * 80) < 4 * 80
    assert mask[90, 140] and not mask[0, 0] and not mask[90, 140 + 60]
    # Inside the box (away from its rim; the box rotated by 30 degrees still holds a 50 px
    # square about the centre), the round trip reproduces the image; outside it is 0.
    half = 35 if rot_deg == 0 else 25
    inner = np.zeros_like(mask)
    inner[90 - half:90 + half, 140 - half:140 + half] = True
    assert mask[inner].all()
    np.testing.assert_allclose(back[inner], img[inner], atol=1.5)
    assert np.all(back[:, :60] == 0) and np.all(back[:, 220:] == 0)
    # Pasting onto the original changes nothing outside the box.
    pasted, mask2 = crops.uncrop_image(crop, center, scale, img.shape[:2], rot=rot_deg, background=img)
    np.testing.assert_array_equal(pasted[~mask2], img[~mask2])
    np.testing.assert_allclose(pasted[inner], img[inner], atol=1.5)
    with pytest.raises(ValueError, match="background"):
        crops.uncrop_image(crop, center, scale, img.shape[:2], background=img[:10])


def test_uncrop_puts_marker_back():
    crop = np.zeros((64, 64), np.uint8)
    center, scale = np.array([100.0, 50.0]), np.array([64.0, 64.0])
    A = crops.crop_affine(center, scale, 64)
    x, y = crops.transform_points(np.array([[110.0, 60.0]]), A)[0]
    crop[round(y), round(x)] = 255
    back, _ = crops.uncrop_image(crop, center, scale, (200, 300))
    yy, xx = np.unravel_index(back.argmax(), back.shape)
    assert (xx, yy) == (110, 60)


def test_weak_perspective_projection_hand_computed():
    pts = torch.tensor([[[0.5, -0.25, 3.0]]], dtype=D)
    cam = torch.tensor([[2.0, 0.1, 0.2]], dtype=D)
    out = cameras.weak_perspective_project(pts, cam)
    torch.testing.assert_close(out, torch.tensor([[[1.2, -0.1]]], dtype=D))
    torch.testing.assert_close(cameras.ndc_to_crop_pixels(torch.tensor([-1.0, 0.0, 1.0]), 256), torch.tensor([0.0, 127.5, 255.0]))
    torch.testing.assert_close(cameras.crop_pixels_to_ndc(cameras.ndc_to_crop_pixels(out, 224), 224), out)


def test_full_perspective_translation_matches_weak_perspective_for_far_small_object():
    # A crop of side b centred at (cx, cy) in a W x H image; a small object near the origin.
    f, H, W = 5000.0, 1080.0, 1920.0
    center, b = np.array([[1200.0, 400.0]]), np.array([300.0])
    cam = torch.tensor([[0.9, 0.05, -0.1]], dtype=D)
    t = cameras.crop_camera_to_full_translation(cam, center, b, np.array([[H, W]]), f)
    # hand-computed: tz = 2 f / (s b)
    assert abs(t[0, 2].item() - 2 * f / (0.9 * 300)) < 1e-9
    pts = torch.tensor([[[0.01, -0.02, 0.0], [0.0, 0.0, 0.0]]], dtype=D)
    K = torch.tensor([[[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]]], dtype=D)
    full = cameras.perspective_project(pts + t[:, None], K)
    ndc = cameras.weak_perspective_project(pts, cam)
    weak = torch.as_tensor(center) + ndc * (b[0] / 2)  # crop ndc -> image px
    torch.testing.assert_close(full, weak, atol=1e-6, rtol=0)


def test_full_translation_to_crop_camera_round_trip():
    f = 5000.0
    g = torch.Generator().manual_seed(1)
    B = 16
    cam = torch.stack([0.5 + torch.rand(B, generator=g, dtype=D), 0.2 * torch.randn(B, generator=g, dtype=D),
                       0.2 * torch.randn(B, generator=g, dtype=D)], dim=-1)
    center = np.random.default_rng(0).uniform(100, 900, size=(B, 2))
    scale = np.random.default_rng(1).uniform(50, 600, size=(B, 2))
    size = np.tile([[1080.0, 1920.0]], (B, 1))
    t = cameras.crop_camera_to_full_translation(cam, center, scale, size, f)
    back = cameras.full_translation_to_crop_camera(t, center, scale, size, f)
    torch.testing.assert_close(back, cam, atol=1e-12, rtol=0)
    # And the other way: translation -> camera -> translation, with [B] box sides.
    t2 = torch.tensor([[0.3, -0.2, 12.0], [-1.0, 0.5, 40.0]], dtype=D)
    c2 = cameras.full_translation_to_crop_camera(t2, center[:2], scale[:2, 0], size[:2], f)
    torch.testing.assert_close(cameras.crop_camera_to_full_translation(c2, center[:2], scale[:2, 0], size[:2], f), t2)
    # Hand-computed: an object straight ahead of the image centre, box centred there, side b:
    # s = 2 f / (tz b), tx = tx', ty = ty'.
    c3 = cameras.full_translation_to_crop_camera([[0.1, 0.2, 10.0]], [[960.0, 540.0]], [250.0], [[1080.0, 1920.0]], f)
    torch.testing.assert_close(c3, torch.tensor([[2 * f / (10.0 * 250.0), 0.1, 0.2]], dtype=D))


def test_procrustes_recovers_known_similarity():
    g = torch.Generator().manual_seed(3)
    src = torch.randn(4, 30, 3, generator=g, dtype=D)
    R = rot.axis_angle_to_matrix(random_axis_angle(4, seed=5))
    s = torch.tensor([0.5, 1.0, 2.0, 3.3], dtype=D)
    t = torch.randn(4, 3, generator=g, dtype=D)
    tgt = s[:, None, None] * src @ R.transpose(1, 2) + t[:, None]
    aligned, s_hat, R_hat, t_hat = procrustes.similarity_procrustes(src, tgt)
    torch.testing.assert_close(aligned, tgt, atol=1e-10, rtol=0)
    torch.testing.assert_close(s_hat, s)
    torch.testing.assert_close(R_hat, R)
    torch.testing.assert_close(t_hat, t)


def test_procrustes_reflection_safe_and_numpy():
    src = np.random.default_rng(0).normal(size=(20, 3))
    tgt = src * np.array([-1.0, 1.0, 1.0])  # a mirror image: no rotation reaches it
    aligned, s, R, t = procrustes.similarity_procrustes(src, tgt)
    assert isinstance(aligned, np.ndarray)
    assert np.linalg.det(R) == pytest.approx(1.0)
    assert np.abs(aligned - tgt).mean() > 1e-3
