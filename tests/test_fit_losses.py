"""Loss fidelity: in ``compat="mmhuman3d"`` every term equals MMHuman3D's SMPLify-X ``evaluate()``
(``KeypointMSELoss`` with Geman-McClure on the squared, img_res-normalised residual,
``ShapePriorLoss``, ``JointPriorLoss(use_full_body=True, smooth_spine=True)`` with its full-pose
offsets, ``SmoothJointLoss``), with the expected values worked out by hand from its formulas;
and the corrected default differs exactly where docs/fit.md says."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from expose_cli.body_models.keypoints import get_convention
from expose_cli.fitting import losses
from expose_cli.fitting.config import load_config
from expose_cli.fitting.joint_limits import (
    TO_JOINT_FRAME,
    joint_limit_penalty,
    standard_joint_angles,
)
from expose_cli.fitting.objective import SIZES, Targets, evaluate
from expose_cli.fitting.optimize import relative_change
from expose_cli.fitting.parts import BODY, FACE, HANDS, SHOULDERS_HIPS

D = torch.float64


class FixedJoints(nn.Module):
    """A body model whose keypoints are given (the terms only see the keypoints)."""

    def __init__(self, joints: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("joints", joints)

    def forward(self, *args) -> torch.Tensor:
        return self.joints


def _params(rows: int = 1, **values) -> dict:
    p = {n: torch.zeros(rows, s, dtype=D) for n, s in SIZES.items()}
    for k, v in values.items():
        p[k] = torch.as_tensor(v, dtype=D).reshape(rows, -1)
    return p


def _scene():
    """Keypoints at (0, 0, 10) m, keypoint 16 at (0.1, 0, 10): pixel (162, 112) with f 5000, c 112."""
    joints = torch.zeros(1, 144, 3, dtype=D)
    joints[..., 2] = 10.0
    joints[0, 16, 0] = 0.1
    target = torch.full((1, 144, 2), 112.0, dtype=D)
    target[0, 16] = torch.tensor([160.0, 112.0])   # 2 px off in x
    target[0, 30] = torch.tensor([112.0, 115.0])   # a hand keypoint 3 px off in y
    target[0, 100] = torch.tensor([111.0, 112.0])  # a face landmark 1 px off in x
    t = Targets(target, torch.ones(1, 144, dtype=D), torch.tensor([5000.0], dtype=D),
                torch.tensor([[112.0, 112.0]], dtype=D), torch.tensor([[224.0, 224.0]], dtype=D))
    return FixedJoints(joints), t


def _g(x: float, sigma: float) -> float:
    return sigma ** 2 * x ** 2 / (sigma ** 2 + x ** 2)


@pytest.mark.parametrize("sigma", [100.0, 1e-4])
def test_keypoints2d_compat_is_gmof_of_the_squared_normalised_residual(sigma):
    model, t = _scene()
    cfg = load_config(None, ["fit.compat=mmhuman3d", f"fit.sigma2d={sigma}", "fit.shape_prior_weight=0",
                             "fit.joint_prior_weight=0"])
    # stage 1: shoulders and hips only, weight 1 (SMPLify-X ignores body_weight=5 there)
    r = 2.0 * 2.0 / 223.0  # normalised x residual of keypoint 16: 2 * 2 px / (img_res - 1)
    got = evaluate(model, cfg, cfg.stage1, _params(), t)
    assert got["keypoints2d"].item() == pytest.approx(_g(r * r, sigma), rel=1e-9)
    # stage 3: body 10, hands 1, face 1
    expected = 10 * _g(r * r, sigma) + _g((6.0 / 223) ** 2, sigma) + _g((2.0 / 223) ** 2, sigma)
    got = evaluate(model, cfg, cfg.stage3, _params(), t)
    assert got["keypoints2d"].item() == pytest.approx(expected, rel=1e-9)
    assert got["total"].item() == pytest.approx(expected, rel=1e-9)


def test_keypoints2d_default_is_robust_on_the_residual_in_image_units():
    model, t = _scene()
    cfg = load_config(None, ["fit.keypoints2d_weight=1", "fit.sigma2d=3", "fit.shape_prior_weight=0",
                             "fit.joint_prior_weight=0"])
    half = 112.0  # half the long side, px
    s = 3.0 / half
    # stage 1 keeps body_weight (5) on the shoulders and hips
    got = evaluate(model, cfg, cfg.stage1, _params(), t)["keypoints2d"].item()
    assert got == pytest.approx(5 * _g(2.0 / half, s), rel=1e-6)
    got = evaluate(model, cfg, cfg.stage3, _params(), t)["keypoints2d"].item()
    assert got == pytest.approx(10 * _g(2.0 / half, s) + _g(3.0 / half, s) + _g(1.0 / half, s), rel=1e-6)


def test_keypoints3d_compat_and_confidence():
    joints = torch.zeros(1, 144, 3, dtype=D)
    target = joints.clone()
    target[0, 1] = torch.tensor([0.3, 0.0, 0.0], dtype=D)   # left hip, 30 cm off
    target[0, 40] = torch.tensor([0.0, 0.2, 0.0], dtype=D)  # a right-hand keypoint, confidence 0.5
    conf = torch.ones(1, 144, dtype=D)
    conf[0, 40] = 0.5
    cfg = load_config(None, ["fit.compat=mmhuman3d", "fit.shape_prior_weight=0", "fit.joint_prior_weight=0"])
    got = evaluate(FixedJoints(joints), cfg, cfg.stage3, _params(), Targets(target, conf))["keypoints3d"].item()
    assert got == pytest.approx(10 * (10 * _g(0.09, 100) + 0.5 * _g(0.04, 100)), rel=1e-9)


def test_shape_prior():
    cfg = load_config(None, ["fit.compat=mmhuman3d"])
    t = Targets(torch.zeros(1, 144, 3, dtype=D), torch.zeros(1, 144, dtype=D))
    got = evaluate(FixedJoints(torch.zeros(1, 144, 3, dtype=D)), cfg, cfg.stage2,
                   _params(betas=[1.0, 2.0] + [0.0] * 8), t)
    assert got["shape_prior"].item() == pytest.approx(5.0)


def _pose() -> list[float]:
    pose = [0.0] * 63
    pose[9] = -0.5    # left knee bent backwards 0.5 rad (below its 0 limit)
    pose[18] = 0.4    # left ankle 0.4 rad about x (inside its limits)
    pose[6] = 0.2     # spine1, inside its limits
    pose[15] = -0.1   # spine2, bent against spine1, inside its limits
    return pose


def test_joint_prior_compat_spine_terms_act_on_the_left_leg():
    cfg = load_config(None, ["fit.compat=mmhuman3d"])
    t = Targets(torch.zeros(1, 144, 3, dtype=D), torch.zeros(1, 144, dtype=D))
    got = evaluate(FixedJoints(torch.zeros(1, 144, 3, dtype=D)), cfg, cfg.stage2, _params(body_pose=_pose()), t)
    knee = (math.exp(0.5) - 1) ** 2             # lower limit 0 of the knee's x angle
    leg = (math.exp(0.5 * 0.4) - 1) ** 2        # "spine" 1-2: knee x ankle
    assert got["joint_prior"].item() == pytest.approx(20 * (knee + 20 * leg), rel=1e-6)


def test_joint_prior_default_spine_terms_act_on_the_spine():
    cfg = load_config(None, [])
    t = Targets(torch.zeros(1, 144, 3, dtype=D), torch.zeros(1, 144, dtype=D))
    got = evaluate(FixedJoints(torch.zeros(1, 144, 3, dtype=D)), cfg, cfg.stage2, _params(body_pose=_pose()), t)
    knee = (math.exp(0.5) - 1) ** 2
    spine = (math.exp(0.2 * 0.1) - 1) ** 2
    assert got["joint_prior"].item() == pytest.approx(20 * (knee + 1.0 * spine), rel=1e-6)


def _rot(axis: int, t: float) -> torch.Tensor:
    c, s = math.cos(t), math.sin(t)
    m = {0: [[1, 0, 0], [0, c, -s], [0, s, c]], 1: [[c, 0, s], [0, 1, 0], [-s, 0, c]],
         2: [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
    return torch.tensor(m, dtype=D)


def test_standard_joint_angles_invert_their_construction():
    from expose_cli.geometry.rotations import matrix_to_axis_angle

    angles = torch.tensor([[0.3, -0.4, 0.2]] * 21, dtype=D) * torch.linspace(0.5, 1.0, 21, dtype=D)[:, None]
    aa = []
    for j in range(21):
        t = torch.tensor(TO_JOINT_FRAME[j], dtype=D)
        r = t.T @ _rot(0, angles[j, 0].item()) @ _rot(1, angles[j, 1].item()) @ _rot(2, angles[j, 2].item()) @ t
        aa.append(matrix_to_axis_angle(r))
    got = standard_joint_angles(torch.stack(aa).reshape(1, 63))[0]
    assert torch.allclose(got, angles, atol=1e-9)
    assert joint_limit_penalty(torch.zeros(1, 63, dtype=D)).abs().max().item() == 0.0


def test_temporal_smoothness_couples_persons_only_in_compat():
    pose = torch.zeros(4, 63, dtype=D)   # 2 persons x 2 frames, person-major
    pose[1, 0] = 0.1                     # person 0, frame 1: left hip 0.1 rad about x
    step = (1 - math.cos(0.1)) + math.sin(0.1)  # L1 change of the rows of Rx(0.1) from the identity's
    compat = losses.temporal_smoothness(pose, None)
    assert compat.tolist() == pytest.approx([0.0, step, step, 0.0])  # person 1's first frame vs person 0's last
    own = losses.temporal_smoothness(pose, 2)
    assert own.tolist() == pytest.approx([0.0, step, 0.0, 0.0])


def test_parts_follow_the_names():
    names = get_convention("smplx").names
    assert sorted(BODY + HANDS + FACE) == list(range(144))
    assert [names[i] for i in SHOULDERS_HIPS] == ["left_shoulder", "right_shoulder", "left_hip", "right_hip"]
    assert all(("thumb" in names[i] or "index" in names[i] or "middle" in names[i] or "ring" in names[i]
                or "pinky" in names[i]) for i in HANDS)
    assert names[15] == "head" and 15 in FACE and all(names[i] != "head" for i in BODY)


def test_relative_change():
    assert relative_change(200.0, 199.0) == pytest.approx(1 / 200)
    assert relative_change(0.5, 0.25) == pytest.approx(0.25)  # below 1: absolute change


def test_rot6d_is_the_first_two_rows():
    from expose_cli.geometry.rotations import matrix_to_axis_angle

    r = _rot(0, 0.3) @ _rot(2, 0.7)
    assert torch.allclose(losses.rot6d_rows(matrix_to_axis_angle(r)), r[:2].reshape(6), atol=1e-9)
