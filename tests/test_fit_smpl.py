"""Fitting SMPL (as MMHuman3D's SMPLify does) with SMPL-X's staged fit: the joints-only SMPL model
equals the smplx layer, and on a synthetic SMPL person (stand-in SMPL, known parameters, exact
joints plus noise) a fit from a perturbed start recovers the joints from 3D keypoints and cuts the
2D error from 2D keypoints."""

from __future__ import annotations

import math

import pytest
import torch

from expose_cli.fitting.config import load_config
from expose_cli.fitting.losses import project
from expose_cli.fitting.objective import Targets, model_keypoints
from expose_cli.fitting.optimize import fit
from expose_cli.fitting.smpl import SMPLJoints
from expose_cli.testing.fit_cases import plausible_body_pose

FOCAL, SIZE = 5000.0, 512
FAST = ["fit.max_iter=20", "stage1.num_iter=2", "stage2.num_iter=3", "stage3.num_iter=10"]


@pytest.fixture(scope="module")
def smpl(standin_tree):
    from expose_cli.body_models.builders import build_smpl
    from expose_cli.io.paths import DataTree

    layer = build_smpl(DataTree(standin_tree))
    return layer, SMPLJoints(layer)


@pytest.fixture(scope="module")
def person(smpl):
    """Truth, exact joints and a start perturbed like a regression's error (body pose +0.11 rad per
    component, betas +0.7, orientation +0.05 rad, depth +1 m)."""
    gen = torch.Generator().manual_seed(7)
    truth = {"global_orient": torch.tensor([[math.pi, 0.0, 0.0]]) + 0.2 * torch.randn(1, 3, generator=gen),
             "body_pose": torch.cat([plausible_body_pose(1, gen), 0.2 * torch.randn(1, 6, generator=gen)], dim=1),
             "betas": torch.randn(1, 10, generator=gen), "transl": torch.tensor([[0.0, 0.2, 18.0]])}
    start = {k: v.clone() for k, v in truth.items()}
    for name, scale in (("body_pose", 0.11), ("betas", 0.7), ("global_orient", 0.05)):
        start[name] = start[name] + scale * torch.randn(start[name].shape, generator=gen)
    start["transl"] = start["transl"] + torch.tensor([0.003, 0.003, 1.0])
    with torch.no_grad():
        joints = model_keypoints(smpl[1], truth)
    return truth, start, joints, gen


def test_smpl_joints_equal_the_smplx_layer(smpl, person):
    from expose_cli.geometry.rotations import axis_angle_to_matrix

    layer, model = smpl
    truth = person[0]
    out = layer(global_orient=axis_angle_to_matrix(truth["global_orient"].reshape(1, 1, 3)),
                body_pose=axis_angle_to_matrix(truth["body_pose"].reshape(1, 23, 3)), betas=truth["betas"])
    want = out.joints[:, :24] + truth["transl"][:, None]
    got = model_keypoints(model, truth)
    assert got.shape == (1, 24, 3)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def _err(model, params, joints):
    with torch.no_grad():
        pred = model_keypoints(model, params)
    f, c = torch.full((1,), FOCAL), torch.full((1, 2), SIZE / 2.0)
    return float((pred - joints).norm(dim=-1).mean()) * 1000, float((project(pred, f, c) - project(joints, f, c)).norm(dim=-1).mean())


def test_3d_fit_recovers_the_joints(smpl, person):
    model = smpl[1]
    truth, start, joints, gen = person
    noisy = joints + 0.002 * torch.randn(joints.shape, generator=gen)
    conf = torch.ones(1, 24)
    params, terms = fit(model, load_config(None, FAST), Targets(noisy, conf), start, persons=1)
    mm_before, _ = _err(model, start, joints)
    mm_after, _ = _err(model, params, joints)
    assert params["body_pose"].shape == (1, 69) and set(params) == {"global_orient", "transl", "body_pose", "betas"}
    assert mm_before > 200 and mm_after < 5.0, (mm_before, mm_after)
    assert set(terms) == {"keypoints3d", "shape_prior", "joint_prior", "start_pull", "total"}


def test_2d_fit_cuts_the_error(smpl, person):
    model = smpl[1]
    truth, start, joints, gen = person
    f, c = torch.full((1,), FOCAL), torch.full((1, 2), SIZE / 2.0)
    kp = project(joints, f, c) + 1.0 * torch.randn(1, 24, 2, generator=gen)
    targets = Targets(kp, torch.ones(1, 24), f, c, torch.full((1, 2), float(SIZE)))
    params, _ = fit(model, load_config(None, FAST), targets, start, persons=1)
    _, px_before = _err(model, start, joints)
    _, px_after = _err(model, params, joints)
    assert px_after < 0.2 * px_before, (px_before, px_after)


def test_fit_command_fits_smpl_to_h36m_keypoints(smpl, person, standin_tree, tmp_path, run_cli):
    import json

    import numpy as np

    from expose_cli.body_models.keypoints import H36M17
    from expose_cli.fitting.smpl import SMPL_JOINT_NAMES

    joints = person[2][0].numpy()
    points = np.zeros((1, 17, 4), dtype=np.float32)
    for i, name in enumerate(H36M17):
        if name in SMPL_JOINT_NAMES:
            points[0, i] = [*joints[SMPL_JOINT_NAMES.index(name)], 1.0]
    np.savez(tmp_path / "h36m.npz", keypoints=points)
    quick = ["--set", "stage1.num_iter=1", "--set", "stage2.num_iter=3", "--set", "stage3.num_iter=6"]
    bad = run_cli("--data-dir", standin_tree, "fit", tmp_path / "h36m.npz", "--body-model", "smplh", "--out", tmp_path / "o")
    assert bad.exit_code == 2 and "--body-model must be smplx or smpl" in bad.stderr
    res = run_cli("--data-dir", standin_tree, "fit", tmp_path / "h36m.npz", "--convention", "h36m", "--body-model", "smpl",
                  "--out", tmp_path / "o", "--format", "npz,obj", *quick)
    assert res.exit_code == 0, res.output
    out = np.load(tmp_path / "o" / "h36m" / "person_00.npz")
    assert out["body_pose_aa"].shape == (23, 3) and out["betas"].shape == (10,) and "left_hand_pose_aa" not in out
    assert out["vertices"].shape == smpl[0].v_template.shape and (tmp_path / "o" / "h36m" / "person_00.obj").exists()
    seen = [SMPL_JOINT_NAMES.index(n) for n in H36M17 if n in SMPL_JOINT_NAMES]
    fitted = out["joints3d"][:24] + out["camera_translation"]
    err_mm = np.linalg.norm(fitted[seen] - joints[seen], axis=-1).mean() * 1000
    assert err_mm < 10, err_mm  # 4.8 mm measured
    summary = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert [r["body_model"] for r in summary["inputs"]] == ["smpl"]
    losses = json.loads((tmp_path / "o" / "h36m" / "losses.json").read_text())["losses"][0]
    assert losses["final"]["keypoints3d"] < 0.3 * losses["initial"]["keypoints3d"]  # from the mean pose


def test_fit_command_reads_smpl_order_arrays_with_the_hand_joints(smpl, person, standin_tree, tmp_path, run_cli):
    import numpy as np

    from expose_cli.fitting.inputs import read_keypoint_input
    from expose_cli.fitting.run import build_targets

    joints = person[2][0].numpy()
    np.savez(tmp_path / "smpl24.npz", keypoints=np.concatenate([joints, np.ones((24, 1))], axis=1)[None])
    kin = read_keypoint_input(tmp_path / "smpl24.npz")  # 24 points: SMPL's order, by count
    targets = build_targets(kin, [0], None, "cpu", smpl=True)
    torch.testing.assert_close(targets.keypoints[0], torch.as_tensor(joints))  # hand joints (22, 23) included
    assert targets.confidence.sum() == 24
    res = run_cli("--data-dir", standin_tree, "fit", tmp_path / "smpl24.npz", "--body-model", "smpl", "--out",
                  tmp_path / "o", "--set", "stage1.num_iter=1", "--set", "stage2.num_iter=3", "--set", "stage3.num_iter=6")
    assert res.exit_code == 0, res.output
    out = np.load(tmp_path / "o" / "smpl24" / "person_00.npz")
    err_mm = np.linalg.norm(out["joints3d"][:24] + out["camera_translation"] - joints, axis=-1) * 1000
    assert err_mm.mean() < 20 and err_mm[22:].max() < 20, err_mm  # from the mean pose, hands included (10.8 mm measured)
