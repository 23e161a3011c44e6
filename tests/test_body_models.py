"""Safe pickle loading, the stand-in files, and the SMPL-X / MANO / FLAME / SMPL layers."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from expose_cli.body_models import build_flame, build_mano, build_smpl, build_smplx
from expose_cli.body_models.auxiliary import Auxiliary
from expose_cli.body_models.loading import load_body_model_data, write_clean_npz
from expose_cli.errors import ExposeError, MissingFileError
from expose_cli.io.paths import DataTree
from expose_cli.io.safe_pickle import (
    ChumpyStandIn,
    safe_load_npy,
    safe_load_pickle,
    safe_loads,
    to_numpy,
)
from expose_cli.testing import standins


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_safe_pickle_refuses_code_execution(tmp_path):
    bad = tmp_path / "SMPL_NEUTRAL.pkl"
    bad.write_bytes(pickle.dumps({"v_template": _Evil()}, protocol=2))
    with pytest.raises(ExposeError, match=r"SMPL_NEUTRAL.pkl: refusing to load: .*system"):
        safe_load_pickle(bad)
    with pytest.raises(ExposeError, match="builtins.eval"):
        safe_loads(pickle.dumps(eval))


def test_safe_pickle_reports_damaged_file(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"a": np.zeros(3)})[:-5])
    with pytest.raises(ExposeError, match="cannot read pickle"):
        safe_load_pickle(path)


def test_chumpy_and_sparse_pickle_round_trip(tmp_path):
    arrays = {"v_template": np.arange(12.0).reshape(4, 3), "J_regressor": np.array([[0.5, 0, 0.5, 0], [0, 1.0, 0, 0]]),
              "f": np.array([[0, 1, 2]], dtype=np.uint32), "bs_style": "lbs"}
    path = tmp_path / "model.pkl"
    standins.write_chumpy_pickle(path, arrays, chumpy_keys=("v_template",), sparse_keys=("J_regressor",))
    raw = path.read_bytes()
    assert b"chumpy.ch" in raw and b"scipy.sparse.csc" in raw  # written as the official files are
    loaded = safe_load_pickle(path)
    assert isinstance(loaded["v_template"], ChumpyStandIn)
    data = to_numpy(loaded)
    np.testing.assert_array_equal(data["v_template"], arrays["v_template"])
    np.testing.assert_array_equal(data["J_regressor"], arrays["J_regressor"])
    assert data["bs_style"] == "lbs"


def test_object_npy_loaded_without_allow_pickle(tmp_path):
    path = tmp_path / "emb.npy"
    np.save(path, np.array({"lmk_face_idx": np.arange(3)}, dtype=object), allow_pickle=True)
    np.testing.assert_array_equal(safe_load_npy(path)["lmk_face_idx"], np.arange(3))
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array(_Evil(), dtype=object), allow_pickle=True)
    with pytest.raises(ExposeError, match="refusing"):
        safe_load_npy(evil)


def test_standin_files_have_official_shapes(standin_tree):
    tree = DataTree(standin_tree)
    smplx_data = load_body_model_data(tree.smplx_model("neutral"))
    assert smplx_data["v_template"].shape == (10475, 3)
    assert smplx_data["f"].shape == (20908, 3) and smplx_data["f"].dtype == np.uint32
    assert smplx_data["shapedirs"].shape == (10475, 3, 400)
    assert smplx_data["posedirs"].shape == (10475, 3, 486)
    assert smplx_data["J_regressor"].shape == (55, 10475)
    assert smplx_data["dynamic_lmk_faces_idx"].shape == (79, 17)
    np.testing.assert_allclose(smplx_data["weights"].sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(smplx_data["J_regressor"].sum(1), 1.0, atol=1e-9)
    height = np.ptp(smplx_data["v_template"][:, 1])
    assert 1.3 < height < 2.1  # human-sized, metres
    for path, kind, shape in [
        (tree.mano_model("right"), "mano", (778, 3)),
        (tree.flame_model("neutral"), "flame", (5023, 3)),
        (tree.smpl_model("female"), "smpl", (6890, 3)),
    ]:
        assert b"chumpy.ch" in path.read_bytes(), kind
        assert load_body_model_data(path)["v_template"].shape == shape


def test_standins_are_deterministic():
    a = standins.standin_mano_arrays(7)
    b = standins.standin_mano_arrays(7)
    np.testing.assert_array_equal(a["v_template"], b["v_template"])
    assert not np.array_equal(a["v_template"], standins.standin_mano_arrays(8)["v_template"])


def _contour_points_by_yaw(verts, faces, idx, bary):
    """The 17 contour points of each table row, rows in order of yaw -39..39 degrees."""
    points = (verts[faces.astype(np.int64)[idx]] * bary[..., None]).sum(-2)
    return points[list(range(78, 39, -1)) + list(range(40))]  # rows 40..78 are -1..-39, 0..39 are 0..39


def test_standin_contour_tables_move_a_little_with_each_degree_of_yaw(standin_tree):
    """As in the real tables, a contour point slides along the head's side as the yaw changes:
    the stand-in head is a tube of radius 9 cm, so one degree moves a point about 9 cm x pi / 180
    = 1.6 mm (less on the tube's 8-sided section), never a jump to another part of the head."""
    smplx_data = standins.standin_smplx_arrays()
    flame = standins.standin_flame_arrays()
    tables = [(smplx_data["v_template"], smplx_data["f"], smplx_data["dynamic_lmk_faces_idx"],
               smplx_data["dynamic_lmk_bary_coords"])]
    dynamic = Auxiliary(DataTree(standin_tree)).flame_dynamic_embedding()
    tables.append((flame["v_template"], flame["f"], dynamic["lmk_face_idx"], dynamic["lmk_b_coords"]))
    for verts, faces, idx, bary in tables:
        step = np.linalg.norm(np.diff(_contour_points_by_yaw(verts, faces, idx, bary), axis=0), axis=-1)
        assert 0.0005 < step.min() and step.max() < 0.0025  # metres per degree


def test_standin_shape_and_expression_directions_are_smooth_and_visible():
    """Each direction moves neighbouring vertices nearly alike (along any mesh edge the displacement
    changes by less than half the edge's length per unit coefficient; independent noise per vertex
    changes by ~40x), and its largest displacement per unit is mm to cm, as the real PCA components."""
    smplx_data, flame = standins.standin_smplx_arrays(), standins.standin_flame_arrays()
    for data, comps in ((smplx_data, [0, 1, 9, 300, 301, 309]), (flame, [0, 1, 9, 300, 301, 309]),
                        (standins.standin_mano_arrays(), [0, 1, 9])):
        faces, verts = data["f"].astype(np.int64), data["v_template"]
        a, b = faces.reshape(-1), np.roll(faces, 1, axis=1).reshape(-1)  # every edge of every face
        length = np.linalg.norm(verts[a] - verts[b], axis=1)
        a, b, length = a[length > 1e-4], b[length > 1e-4], length[length > 1e-4]
        for c in comps:
            d = data["shapedirs"][:, :, c]
            assert 0.001 < np.linalg.norm(d, axis=1).max() < 0.1, c
            assert (np.linalg.norm(d[a] - d[b], axis=1) / length).max() < 0.5, c


def _identity(b, n):
    return torch.eye(3).expand(b, n, 3, 3)


def test_smplx_forward_batch_64(standin_tree):
    model = build_smplx(DataTree(standin_tree))
    B = 64
    out = model(
        betas=torch.zeros(B, 10), expression=torch.zeros(B, 10), global_orient=_identity(B, 1),
        body_pose=_identity(B, 21), left_hand_pose=_identity(B, 15), right_hand_pose=_identity(B, 15),
        jaw_pose=_identity(B, 1), leye_pose=_identity(B, 1), reye_pose=_identity(B, 1),
    )
    assert out.vertices.shape == (B, 10475, 3)
    assert out.joints.shape == (B, 144, 3)
    assert torch.isfinite(out.vertices).all()
    # Zero pose, zero shape: the template itself.
    template = torch.as_tensor(load_body_model_data(DataTree(standin_tree).smplx_model())["v_template"], dtype=torch.float32)
    torch.testing.assert_close(out.vertices[0], template, atol=1e-5, rtol=0)


def test_smplx_betas_and_rotation(standin_tree):
    tree = DataTree(standin_tree)
    model = build_smplx(tree)
    data = load_body_model_data(tree.smplx_model())
    betas = torch.zeros(1, 10)
    betas[0, 0] = 2.0
    out = model(betas=betas)
    expected = data["v_template"] + 2.0 * data["shapedirs"][:, :, 0]
    torch.testing.assert_close(out.vertices[0], torch.as_tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)
    # A global rotation rotates every vertex about the pelvis joint.
    R = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    rest = model()
    rot = model(global_orient=R[:, None])
    pelvis = rest.joints[0, 0]
    torch.testing.assert_close(rot.vertices[0], (rest.vertices[0] - pelvis) @ R[0].T + pelvis, atol=1e-5, rtol=0)


def test_sparse_keypoints_equal_the_full_pass(standin_tree):
    from expose_cli.body_models.sparse_keypoints import SMPLXKeypoints
    from expose_cli.geometry.rotations import axis_angle_to_matrix

    model = build_smplx(DataTree(standin_tree))
    sparse = SMPLXKeypoints(model)
    assert sparse.num_vertices_used < model.v_template.shape[0] // 3
    g = torch.Generator().manual_seed(3)
    B = 5

    def rots(n):
        return axis_angle_to_matrix(0.6 * torch.randn(B, n, 3, generator=g))

    args = dict(global_orient=rots(1), body_pose=rots(21), left_hand_pose=rots(15), right_hand_pose=rots(15),
                jaw_pose=rots(1), leye_pose=rots(1), reye_pose=rots(1),
                betas=torch.randn(B, 10, generator=g), expression=torch.randn(B, 10, generator=g))
    # A strongly turned head selects other rows of the dynamic contour look-up table.
    yaw = torch.tensor([[0.0, 1.2, 0.0], [0.0, -1.2, 0.0]])
    args["body_pose"][:2, 11] = axis_angle_to_matrix(yaw)
    full = model(**args).joints
    torch.testing.assert_close(sparse(**args), full, atol=1e-5, rtol=0)


def test_smplx_npz_object_arrays_are_skipped_unread(tmp_path):
    # the blend shapes left out: 0.2 GB that this check does not need
    arrays = {k: v for k, v in standins.standin_smplx_arrays().items() if k not in ("shapedirs", "posedirs")}
    np.savez(tmp_path / "SMPLX_NEUTRAL.npz", part2num=np.array({"a": 1}, dtype=object), **arrays)
    data = load_body_model_data(tmp_path / "SMPLX_NEUTRAL.npz")  # the loader build_smplx uses
    assert "part2num" not in data  # an object array needs pickle: skipped, never unpickled
    assert data["v_template"].shape == (10475, 3) and data["f"].shape == (20908, 3)


def test_missing_body_model_names_the_fix(tmp_path):
    with pytest.raises(MissingFileError) as info:
        build_smplx(DataTree(tmp_path))
    assert "SMPLX_NEUTRAL.npz" in info.value.message
    assert "import-body-models" in info.value.hint


def test_wrong_model_file_is_refused(tmp_path):
    arrays = standins.standin_mano_arrays()
    write_clean_npz(arrays, tmp_path / "SMPLX_NEUTRAL.npz")
    with pytest.raises(ExposeError, match="not a SMPLX model"):
        build_smplx(tmp_path)


def test_mano_left_is_mirror_of_right(standin_tree, tmp_path):
    tree = DataTree(standin_tree)
    right = build_mano(tree, "right")
    # Without MANO_LEFT.pkl the left model is mirrored from the right one.
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(tree.mano_model("right").read_bytes())
    left = build_mano(tmp_path, "left")
    assert right.is_rhand and not left.is_rhand
    flip = torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(left.v_template, right.v_template * flip)
    # A pose of the right hand, mirrored as (x, -y, -z) per joint, gives the mirrored mesh.
    g = torch.Generator().manual_seed(0)
    pose_aa = 0.3 * torch.randn(1, 16, 3, generator=g)
    from expose_cli.geometry.rotations import axis_angle_to_matrix

    mirrored_aa = pose_aa * torch.tensor([1.0, -1.0, -1.0])
    r = right(global_orient=axis_angle_to_matrix(pose_aa[:, :1]), hand_pose=axis_angle_to_matrix(pose_aa[:, 1:]))
    l_out = left(global_orient=axis_angle_to_matrix(mirrored_aa[:, :1]), hand_pose=axis_angle_to_matrix(mirrored_aa[:, 1:]))
    torch.testing.assert_close(l_out.vertices, r.vertices * flip, atol=1e-5, rtol=0)


def test_flame_and_smpl_layers(standin_tree):
    tree = DataTree(standin_tree)
    flame = build_flame(tree)
    eye = torch.eye(3).expand(2, 1, 3, 3)
    out = flame(betas=torch.zeros(2, 100), expression=torch.zeros(2, 50), global_orient=eye, neck_pose=eye,
                jaw_pose=eye, leye_pose=eye, reye_pose=eye)
    assert out.vertices.shape == (2, 5023, 3) and out.joints.shape == (2, 73, 3)  # 5 + 51 + 17
    smpl = build_smpl(tree, "male")
    out = smpl(betas=torch.zeros(3, 10))
    assert out.vertices.shape == (3, 6890, 3)


def test_layers_print_nothing_and_keep_smplx_components(standin_tree, tmp_path, capfd, monkeypatch):
    """smplx prints a WARNING to stdout for files with fewer components than its full space (MANO
    and SMPL: 10 shape; SMPL-X v1.0: 10 + 10); the layers are built without it, without swapping
    sys.stdout, and with the components smplx keeps then: shape 0-9, expression the next 10."""
    import sys

    from expose_cli.body_models import builders

    tree = DataTree(standin_tree)
    stdout_seen = []
    real_struct = builders.Struct
    monkeypatch.setattr(builders, "Struct", lambda **kw: stdout_seen.append(sys.stdout) or real_struct(**kw))
    mano, smpl = build_mano(tree, "right"), build_smpl(tree, "neutral")
    assert stdout_seen == [sys.stdout, sys.stdout]  # sys.stdout untouched while smplx builds
    data = load_body_model_data(tree.smplx_model("neutral", "npz"))
    shapedirs = data["shapedirs"]
    data["shapedirs"] = shapedirs[:, :, np.r_[0:10, 300:310]]  # as SMPL-X v1.0: 10 shape + 10 expression
    write_clean_npz(data, tmp_path / "SMPLX_NEUTRAL.npz")
    smplx_v10 = build_smplx(tmp_path / "SMPLX_NEUTRAL.npz")
    assert capfd.readouterr().out == ""
    torch.testing.assert_close(smplx_v10.shapedirs.double(), torch.from_numpy(shapedirs[:, :, :10]).double())
    torch.testing.assert_close(smplx_v10.expr_dirs.double(), torch.from_numpy(shapedirs[:, :, 300:310]).double())
    assert smplx_v10.num_betas == 10 and smplx_v10.num_expression_coeffs == 10
    mano_file = load_body_model_data(tree.mano_model("right"))
    torch.testing.assert_close(mano.shapedirs.double(), torch.from_numpy(mano_file["shapedirs"]).double())
    assert mano.num_betas == 10 and smpl.num_betas == 10
    smplx_full = build_smplx(tree)  # 300 + 100 components: smplx's own class, expression from 300
    torch.testing.assert_close(smplx_full.expr_dirs.double(), torch.from_numpy(shapedirs[:, :, 300:310]).double())
    assert capfd.readouterr().out == ""


def test_auxiliary_files(standin_tree, tmp_path):
    aux = Auxiliary(DataTree(standin_tree))
    assert aux.smplx_to_j14().shape == (14, 10475)
    assert aux.j_regressor_h36m().shape == (17, 6890)
    ids = aux.mano_smplx_vertex_ids()
    assert ids["left_hand"].shape == (778,) and ids["right_hand"].shape == (778,)
    assert aux.smplx_flame_vertex_ids().shape == (5023,)
    assert aux.mean_rot6d("body_pose", 21).shape == (21, 6)
    np.testing.assert_allclose(aux.mean_rot6d("neck", 1), [[1, 0, 0, 1, 0, 0]])
    assert aux.shape_mean().shape[0] >= 10
    assert aux.flame_dynamic_embedding()["lmk_face_idx"].shape == (79, 17)
    # wrong shape and missing file
    bad = DataTree(tmp_path)
    bad.smplx_dir.mkdir(parents=True)
    np.save(bad.smplx_to_j14, np.zeros((14, 10)))
    with pytest.raises(ExposeError, match="expected an array of shape 14x10475"):
        Auxiliary(bad).smplx_to_j14()
    with pytest.raises(MissingFileError, match="auxiliary file not found"):
        Auxiliary(bad).shape_mean()


def test_official_mano_left_shapedirs_bug_is_fixed(tmp_path, standin_tree):
    from expose_cli.body_models.builders import fix_mano_left_shapedirs, mirror_mano_data

    right = standins.standin_mano_arrays()
    good_left = mirror_mano_data(right)
    buggy_left = dict(good_left)
    buggy_left["shapedirs"] = good_left["shapedirs"].copy()
    buggy_left["shapedirs"][:, 0, :] = right["shapedirs"][:, 0, :]  # the official file's sign error
    # The detection (Hand4Whole's test) on plain arrays: buggy fixed, correct left untouched.
    fixed = fix_mano_left_shapedirs(buggy_left, right)
    np.testing.assert_array_equal(fixed["shapedirs"], good_left["shapedirs"])
    assert fix_mano_left_shapedirs(good_left, right) is good_left
    assert np.abs(buggy_left["shapedirs"][:, 0] - right["shapedirs"][:, 0]).sum() == 0  # input not modified
    # Through the builder, with both files in the folder.
    standins.write_chumpy_pickle(tmp_path / "MANO_RIGHT.pkl", right)
    standins.write_chumpy_pickle(tmp_path / "MANO_LEFT.pkl", buggy_left)
    left = build_mano(tmp_path, "left")
    torch.testing.assert_close(left.shapedirs, torch.as_tensor(good_left["shapedirs"][..., :10], dtype=torch.float32))
    betas = torch.zeros(1, 10)
    betas[0, 0] = 3.0
    r_out = build_mano(tmp_path, "right")(betas=betas)
    l_out = left(betas=betas)
    torch.testing.assert_close(l_out.vertices, r_out.vertices * torch.tensor([-1.0, 1.0, 1.0]), atol=1e-5, rtol=0)
    # The stand-in tree's correct left model is loaded unchanged.
    tree = DataTree(standin_tree)
    expected = load_body_model_data(tree.mano_model("left"))["shapedirs"][..., :10]
    torch.testing.assert_close(build_mano(tree, "left").shapedirs, torch.as_tensor(expected, dtype=torch.float32))


def test_auxiliary_loaders_reject_wrong_files_naming_them(tmp_path):
    from expose_cli.body_models.auxiliary import LOADERS

    tree = DataTree(tmp_path)
    tree.smplx_dir.mkdir(parents=True)
    tree.flame_dir.mkdir(parents=True)
    aux = Auxiliary(tree)
    np.save(tree.flame_dynamic_embedding, np.array({"lmk_face_idx": np.zeros((79, 17), np.int64)}, dtype=object),
            allow_pickle=True)
    with pytest.raises(ExposeError, match=r"flame_dynamic_embedding.npy: expected a pickled dict with 'lmk_face_idx', 'lmk_b_coords'"):
        aux.flame_dynamic_embedding()
    np.save(tree.flame_dynamic_embedding, np.array({"lmk_face_idx": np.full((79, 17), 9976),
                                                    "lmk_b_coords": np.zeros((79, 17, 3))}, dtype=object), allow_pickle=True)
    with pytest.raises(ExposeError, match=r"flame_dynamic_embedding.npy: lmk_face_idx: indices 9976..9976 outside 0..9975"):
        aux.flame_dynamic_embedding()
    tree.flame_static_embedding.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ExposeError, match=r"flame_static_embedding.pkl: expected a dict"):
        aux.flame_static_embedding()
    tree.all_means.write_bytes(pickle.dumps({"body_pose": {"aa": np.zeros(63)}, "left_hand_pose": {},
                                             "right_hand_pose": {}}))
    with pytest.raises(ExposeError, match=r"all_means.pkl: expected 'body_pose' to be a dict with 'cont_rot_repr'"):
        aux.all_means()
    np.save(tree.shape_mean, np.zeros((1, 10)))
    with pytest.raises(ExposeError, match=r"shape_mean.npy: expected a 1-D array of shape N"):
        aux.shape_mean()
    tree.mano_smplx_vertex_ids.write_bytes(pickle.dumps({"left_hand": np.arange(778) + 0.5, "right_hand": np.arange(778)}))
    with pytest.raises(ExposeError, match=r"MANO_SMPLX_vertex_ids.pkl: left_hand: expected integer indices"):
        aux.mano_smplx_vertex_ids()
    # The loaders are the doctor's: one per auxiliary file of the seed.
    assert sorted(LOADERS) == sorted(p.name for p in (
        tree.all_means, tree.shape_mean, tree.smplx_to_j14, tree.j_regressor_h36m, tree.mano_smplx_vertex_ids,
        tree.smplx_flame_vertex_ids, tree.flame_static_embedding, tree.flame_dynamic_embedding))


def test_auxiliary_standins_pass_every_loader(standin_tree):
    from expose_cli.body_models.auxiliary import LOADERS

    tree = DataTree(standin_tree)
    paths = {p.name: p for p in (tree.all_means, tree.shape_mean, tree.smplx_to_j14, tree.j_regressor_h36m,
                                 tree.mano_smplx_vertex_ids, tree.smplx_flame_vertex_ids,
                                 tree.flame_static_embedding, tree.flame_dynamic_embedding)}
    assert sorted(LOADERS) == sorted(paths)
    # what each loader returns: the file's numbers, in the stand-ins' shapes (npy: read back plainly)
    for name, shape in (("shape_mean.npy", (300,)), ("SMPLX_to_J14.npy", (14, 10475)),
                        ("J_regressor_h36m.npy", (17, 6890)), ("SMPL-X__FLAME_vertex_ids.npy", (5023,))):
        got, raw = LOADERS[name](paths[name]), np.load(paths[name], allow_pickle=False)
        assert got.shape == raw.shape == shape, name
        np.testing.assert_allclose(got, raw, rtol=1e-6, err_msg=name)
    means = LOADERS["all_means.pkl"](paths["all_means.pkl"])
    for group, n in (("body_pose", 21), ("left_hand_pose", 15), ("right_hand_pose", 15)):
        np.testing.assert_allclose(np.reshape(means[group]["cont_rot_repr"], -1),
                                   np.reshape(standins.standin_all_means()[group]["cont_rot_repr"], -1), rtol=1e-6)
        assert np.size(means[group]["cont_rot_repr"]) == 6 * n
    ids = LOADERS["MANO_SMPLX_vertex_ids.pkl"](paths["MANO_SMPLX_vertex_ids.pkl"])
    assert {k: (v.shape, v.dtype) for k, v in ids.items()} == {"left_hand": ((778,), np.int64), "right_hand": ((778,), np.int64)}
    dynamic = LOADERS["flame_dynamic_embedding.npy"](paths["flame_dynamic_embedding.npy"])
    assert dynamic["lmk_face_idx"].shape == (79, 17) and dynamic["lmk_b_coords"].shape == (79, 17, 3)
    static = Auxiliary(tree).flame_static_embedding()
    assert static["lmk_face_idx"].shape == (51,) and static["lmk_b_coords"].shape == (51, 3)
