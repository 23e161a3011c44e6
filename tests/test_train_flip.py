"""The horizontal flip is a true mirror for SMPL-X, MANO and FLAME.

For random parameters, the mesh of the flipped parameters must equal the mirrored mesh of the
original (x -> -x), vertices matched by the nearest mirrored template vertex.

The stand-in models are only near-symmetric (their tube radii carry 5 % noise), so the exact check
runs on a MIRROR-DOUBLED stand-in: the stand-in's vertices plus their mirror images, with skinning
weights, joint regressor, shape and pose blend shapes mirrored to match (an exactly symmetric model
built from the stand-in). Bound 1e-4 m; measured max: see docs/train.md ("Data"). On the raw
stand-in the comparison is dominated by its random, asymmetric blend shapes (median 15-25 mm for a
correct flip against 340-420 mm without the axis-angle mirroring; measured 2026-11-30), too coarse to
be a test.
MANO's left model is the exact mirror of the right one, so there flipping right-hand parameters
and evaluating the LEFT model must give the mirrored right mesh, vertex for vertex.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import smplx
import torch

from expose_cli.body_models.builders import build_mano
from expose_cli.body_models.keypoints import get_convention
from expose_cli.geometry.rotations import axis_angle_to_matrix
from expose_cli.io.paths import DataTree
from expose_cli.testing.standins import standin_flame_arrays, standin_smplx_arrays
from expose_cli.training.augment import flip_params

M = np.array([-1.0, 1.0, 1.0])


def mirror_doubled(a: dict, joint_perm: np.ndarray) -> dict:
    """An exactly mirror-symmetric model from stand-in arrays: [vertices; mirrored vertices]."""
    v = a["v_template"]
    n = len(v)
    mid = np.abs(v[:, 0]) < 1e-9  # on the mirror plane: the vertex and its twin coincide, so they
    # must also move alike (a symmetric model's midline is symmetric): average them

    def pair(x, mirror_x):
        x = np.where(mid.reshape(-1, *[1] * (x.ndim - 1)), 0.5 * (x + mirror_x), x)
        return np.concatenate([x, np.where(mid.reshape(-1, *[1] * (x.ndim - 1)), x, mirror_x)])

    out = dict(a)
    out["v_template"] = np.concatenate([v, v * M])
    out["f"] = np.concatenate([a["f"], a["f"][:, ::-1] + n]).astype(a["f"].dtype)
    out["weights"] = pair(a["weights"], a["weights"][:, joint_perm])
    reg = np.asarray(a["J_regressor"])
    out["J_regressor"] = 0.5 * np.concatenate([reg, reg[joint_perm]], axis=1)
    out["shapedirs"] = pair(a["shapedirs"], a["shapedirs"] * M[None, :, None])
    pd = a["posedirs"].reshape(n, 3, -1, 9)  # [V, 3, joints 1.., 9 entries of R - I]
    fab = np.outer(M, M).reshape(9)
    out["posedirs"] = pair(pd, pd[:, :, joint_perm[1:] - 1] * M[None, :, None, None] * fab).reshape(2 * n, 3, -1)
    return out


def nearest_mirror_perm(template: np.ndarray, slab: float = 0.01) -> np.ndarray:
    """perm[i] = the template vertex nearest to the mirror image of vertex i (searched among the
    vertices within one ``slab`` (m) in height, where a mirror partner lies on a near-symmetric model)."""
    t = torch.as_tensor(template, dtype=torch.float64)
    mirrored = t * torch.as_tensor(M)
    key = torch.floor(t[:, 1] / slab).long()
    perm = torch.empty(len(t), dtype=torch.long)
    for b in torch.unique(key):
        rows = torch.nonzero(key == b).squeeze(1)
        cand = torch.nonzero((key - b).abs() <= 1).squeeze(1)
        d = torch.cdist(mirrored[rows], t[cand], compute_mode="donot_use_mm_for_euclid_dist")
        perm[rows] = cand[d.argmin(1)]
    return perm.numpy()


def _smplx_layer(arrays: dict, tmp_path) -> smplx.SMPLXLayer:
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    arrays = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in arrays.items()}
    # the 10 shape and 10 expression components the layer uses (as an SMPL-X v1.0 file holds them):
    # the same model, 100 MB less to write
    arrays["shapedirs"] = arrays["shapedirs"][..., np.r_[0:10, 300:310]]
    np.savez(path, **arrays)
    return smplx.SMPLXLayer(model_path=str(path), num_betas=10, num_expression_coeffs=10, use_pca=False,
                            flat_hand_mean=True, ext="npz")


def _smplx_mesh(layer, p: dict) -> np.ndarray:
    m = {k: axis_angle_to_matrix(torch.as_tensor(v, dtype=torch.float32)) for k, v in p.items() if k != "betas"}
    with torch.no_grad():
        out = layer(global_orient=m["global_orient"][None, None], body_pose=m["body_pose"][None],
                    left_hand_pose=m["left_hand_pose"][None], right_hand_pose=m["right_hand_pose"][None],
                    jaw_pose=m["jaw_pose"][None, None], betas=torch.as_tensor(p["betas"], dtype=torch.float32)[None])
    return out.vertices[0].double().numpy()


def _random_smplx(rng) -> dict:
    return {"global_orient": rng.normal(0, 0.5, 3), "body_pose": rng.normal(0, 0.4, (21, 3)),
            "left_hand_pose": rng.normal(0, 0.4, (15, 3)), "right_hand_pose": rng.normal(0, 0.4, (15, 3)),
            "jaw_pose": rng.normal(0, 0.2, 3), "betas": rng.normal(0, 1, 10)}


def _flip_error(layer, perm, p) -> np.ndarray:
    flipped = {k: v for k, v in flip_params(p).items() if k in p}
    return np.linalg.norm(_smplx_mesh(layer, flipped) - (_smplx_mesh(layer, p) * M)[perm], axis=1)


SMPLX_JOINT_PERM = get_convention("smplx").flip_permutation[:55]


@pytest.fixture(scope="module")
def smplx_arrays():
    return standin_smplx_arrays(0)


def test_smplx_flip_equals_mirrored_mesh_on_symmetric_standin(smplx_arrays, tmp_path):
    sym = mirror_doubled(smplx_arrays, SMPLX_JOINT_PERM)
    layer = _smplx_layer(sym, tmp_path)
    rng = np.random.default_rng(0)
    perm = nearest_mirror_perm(sym["v_template"])
    for _ in range(2):
        p = _random_smplx(rng)
        err = _flip_error(layer, perm, p)
        assert err.max() < 1e-4, err.max()
        twice = flip_params({k: v for k, v in flip_params(p).items() if k in p})
        for key in p:
            assert np.allclose(twice[key], p[key], atol=1e-12), key  # flipping twice: the identity


def test_mano_flip_right_to_left_model(standin_tree):
    right, left = build_mano(DataTree(standin_tree), "right"), build_mano(DataTree(standin_tree), "left")
    rng = np.random.default_rng(2)
    p = {"global_orient": rng.normal(0, 0.5, 3), "right_hand_pose": rng.normal(0, 0.4, (15, 3)),
         "betas": rng.normal(0, 1, 10)}
    f = flip_params(p)
    assert "right_hand_pose" not in f  # a flipped right hand is a left hand

    def mesh(layer, go, pose, betas):
        with torch.no_grad():
            out = layer(global_orient=axis_angle_to_matrix(torch.as_tensor(go, dtype=torch.float32))[None, None],
                        hand_pose=axis_angle_to_matrix(torch.as_tensor(pose, dtype=torch.float32))[None],
                        betas=torch.as_tensor(betas, dtype=torch.float32)[None])
        return out.vertices[0].double().numpy()

    original = mesh(right, p["global_orient"], p["right_hand_pose"], p["betas"])
    flipped = mesh(left, f["global_orient"], f["left_hand_pose"], f["betas"])
    assert np.abs(flipped - original * M).max() < 1e-5  # vertex i of the left model mirrors vertex i


FLAME_JOINT_PERM = np.array([0, 1, 2, 4, 3])  # root, neck, jaw, left eye <-> right eye


def _flame_mesh(layer, p):
    eye = torch.eye(3)[None, None]
    with torch.no_grad():
        out = layer(global_orient=axis_angle_to_matrix(torch.as_tensor(p["global_orient"], dtype=torch.float32))[None, None],
                    neck_pose=axis_angle_to_matrix(torch.as_tensor(p["neck_pose"], dtype=torch.float32))[None, None],
                    jaw_pose=axis_angle_to_matrix(torch.as_tensor(p["jaw_pose"], dtype=torch.float32))[None, None],
                    leye_pose=eye, reye_pose=eye, betas=torch.as_tensor(p["betas"], dtype=torch.float32)[None],
                    expression=torch.zeros(1, 50))
    return out.vertices[0].double().numpy()


def test_flame_flip_equals_mirrored_mesh_on_symmetric_standin(standin_tree, tmp_path):
    sym = mirror_doubled(standin_flame_arrays(2), FLAME_JOINT_PERM)
    # float32: what the layer computes in anyway (half the bytes)
    np.savez(tmp_path / "FLAME_NEUTRAL.npz", **{k: v.astype(np.float32) if getattr(v, "dtype", None) == np.float64 else v
                                              for k, v in sym.items() if not isinstance(v, str)})
    shutil.copy(DataTree(standin_tree).flame_static_embedding, tmp_path / "flame_static_embedding.pkl")
    layer = smplx.FLAMELayer(model_path=str(tmp_path), num_betas=100, num_expression_coeffs=50,
                             use_face_contour=False, ext="npz")  # our builder checks FLAME's vertex count
    rng = np.random.default_rng(3)
    p = {"global_orient": rng.normal(0, 0.5, 3), "neck_pose": rng.normal(0, 0.3, 3), "jaw_pose": rng.normal(0, 0.3, 3),
         "betas": rng.normal(0, 1, 100)}
    f = {k: v for k, v in flip_params(p).items() if k in p}
    perm = nearest_mirror_perm(sym["v_template"])
    err = np.linalg.norm(_flame_mesh(layer, f) - (_flame_mesh(layer, p) * M)[perm], axis=1)
    assert err.max() < 1e-4, err.max()
