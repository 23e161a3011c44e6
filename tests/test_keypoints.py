"""Keypoint conventions: sizes, flips, conversion through names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expose_cli.body_models.keypoints import (
    CONVENTIONS,
    H36M_TO_J14,
    convert_keypoints,
    flip_keypoints,
    get_convention,
)

SIZES = {"smplx": 144, "coco": 17, "coco_wholebody": 133, "openpose_25": 25, "openpose_137": 137,
         "openpose_hand_21": 21, "openpose_face_70": 70, "lsp": 14, "h36m": 17, "freihand": 21,
         "mano": 21, "flame_73": 73, "face3d": 7, "pw3d": 18, "spin_smplx": 24}


@pytest.mark.parametrize("name,size", sorted(SIZES.items()))
def test_sizes_and_flip_involution(name, size):
    conv = get_convention(name)
    assert len(conv) == size
    perm = conv.flip_permutation
    np.testing.assert_array_equal(perm[perm], np.arange(size))
    for i, j in enumerate(perm):
        a, b = conv.names[i], conv.names[j]
        if a.startswith("left_"):
            assert b == "right_" + a[5:]
        if "left" not in a and "right" not in a:
            assert i == j


def test_known_indices():
    smplx = get_convention("smplx")
    assert smplx.index("pelvis") == 0 and smplx.index("left_wrist") == 20 and smplx.index("right_wrist") == 21
    assert smplx.index("nose") == 55 and smplx.index("right_contour_1") == 127
    coco = np.zeros((17, 3))
    coco[5] = (10.0, 20.0, 1.0)  # left shoulder
    out, mask = convert_keypoints(coco, "coco", "smplx")
    assert out.shape == (144, 3)
    np.testing.assert_array_equal(out[16], [10.0, 20.0, 1.0])  # smplx left_shoulder
    assert mask.sum() == 17 and mask[16] and not mask[0]


def test_face_landmarks_follow_ibug_order():
    # OpenPose face point 36 (iBUG right eye outer corner) and 30 (nose tip row) land on the
    # SMPL-X landmarks of the same meaning; face3d's 7 points are iBUG 36, 39, 42, 45, 33, 48, 54.
    face = get_convention("openpose_face_70")
    face3d = get_convention("face3d")
    assert [face.index(n) for n in face3d.names] == [36, 39, 42, 45, 33, 48, 54]
    assert face.names[0] == "right_contour_1" and face.names[16] == "left_contour_1"
    assert face.names[8] == "contour_middle"


def test_round_trip_on_shared_names():
    rng = np.random.default_rng(0)
    kps = rng.normal(size=(5, 25, 3))
    smplx, _ = convert_keypoints(kps, "openpose_25", "smplx")
    back, mask = convert_keypoints(smplx, "smplx", "openpose_25")
    assert mask.all()
    np.testing.assert_array_equal(back, kps)
    lsp, mask = convert_keypoints(kps, "openpose_25", "lsp")
    assert not mask[13]  # head_top: not in OpenPose
    assert np.all(lsp[:, 13] == 0)


def test_torch_conversion_and_h36m_to_j14():
    h36m = get_convention("h36m")
    lsp = get_convention("lsp")
    # H36M_TO_J14 picks the same names as the conversion through names; H3.6M's thorax is the
    # LSP neck (NAME_ALIASES, as MMHuman3D's shared 'neck_extra').
    for j, i in enumerate(H36M_TO_J14):
        assert h36m.names[i] == lsp.names[j] or (h36m.names[i], lsp.names[j]) == ("thorax", "neck")
    t = torch.arange(17 * 3, dtype=torch.float32).reshape(1, 17, 3)
    out, mask = convert_keypoints(t, "h36m", "lsp")
    assert isinstance(out, torch.Tensor) and out.shape == (1, 14, 3)
    assert mask.all()  # the neck included
    torch.testing.assert_close(out[0], t[0, H36M_TO_J14])
    np.testing.assert_array_equal(convert_keypoints(t.numpy(), "h36m", "lsp")[0][0], t[0, H36M_TO_J14].numpy())


def test_thorax_neck_alias_rules():
    # Both ways between dataset conventions: LSP / OpenPose / 3DPW neck -> H3.6M thorax.
    for src in ("lsp", "openpose_25", "pw3d"):
        kps = np.arange(len(get_convention(src)) * 2, dtype=float).reshape(-1, 2)
        out, mask = convert_keypoints(kps, src, "h36m")
        thorax = get_convention("h36m").index("thorax")
        assert mask[thorax]
        np.testing.assert_array_equal(out[thorax], kps[get_convention(src).index("neck")])
    # An exact match wins over the alias: spin_smplx has both neck and thorax.
    spin = get_convention("spin_smplx")
    kps = np.arange(24 * 2, dtype=float).reshape(24, 2)
    out, _ = convert_keypoints(kps, "spin_smplx", "h36m")
    np.testing.assert_array_equal(out[get_convention("h36m").index("thorax")], kps[spin.index("thorax")])
    out, _ = convert_keypoints(kps, "spin_smplx", "lsp")
    np.testing.assert_array_equal(out[12], kps[spin.index("neck")])
    # SMPL-X's neck is the skeleton joint: never aliased to or from the thorax.
    _, mask = convert_keypoints(np.zeros((17, 3)), "h36m", "smplx")
    assert not mask[get_convention("smplx").index("neck")]
    _, mask = convert_keypoints(np.zeros((144, 3)), "smplx", "h36m")
    assert not mask[get_convention("h36m").index("thorax")]


def test_flip_keypoints_image_coordinates():
    kps = np.zeros((17, 3))
    kps[5] = (10.0, 5.0, 1.0)  # left shoulder at x=10
    flipped = flip_keypoints(kps, "coco", image_width=100)
    np.testing.assert_array_equal(flipped[6], [89.0, 5.0, 1.0])  # becomes the right shoulder


def test_unknown_convention():
    with pytest.raises(ValueError, match="unknown keypoint convention"):
        get_convention("nope")
    assert "h36m_smplx" in CONVENTIONS


def test_conventions_are_read_only():
    assert get_convention("h36m_smplx").names == get_convention("h36m").names  # built with the rest
    with pytest.raises(TypeError):
        CONVENTIONS["mine"] = get_convention("coco")  # type: ignore[index]
