"""Metrics against hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from expose_cli.evaluation import metrics as M
from expose_cli.geometry.rotations import axis_angle_to_matrix

D = torch.float64


def cloud(n=50, seed=0):
    return torch.randn(1, n, 3, generator=torch.Generator().manual_seed(seed), dtype=D)


def test_mpjpe_hand_computed():
    gt = torch.zeros(1, 2, 3, dtype=D)
    pred = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]], dtype=D)
    assert M.mpjpe(pred, gt).item() == pytest.approx(3.0)  # (5 + 1) / 2


def test_pa_errors_ignore_similarity_but_not_deformation():
    gt = cloud()
    R = axis_angle_to_matrix(torch.tensor([0.3, -1.0, 0.5], dtype=D))
    moved = 2.5 * gt @ R.T + torch.tensor([1.0, -2.0, 0.5], dtype=D)
    assert M.pa_mpjpe(moved, gt).item() < 1e-10
    assert M.mpjpe(moved, gt).item() > 0.5
    # A translation only shifts MPJPE by exactly its length.
    shift = torch.tensor([0.0, 0.003, 0.004], dtype=D)
    assert M.mpjpe(gt + shift, gt).item() == pytest.approx(0.005)


def test_pa_error_of_known_deformation():
    # Stretch two of four symmetric points by 10%. By symmetry the best rotation is the identity and
    # the translation zero; the least-squares scale is s = sum(gt.pred) / sum(pred.pred) = 4.2 / 4.42.
    gt = torch.tensor([[[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0]]], dtype=D)
    pred = gt.clone()
    pred[0, :2, 0] *= 1.1
    s = 4.2 / 4.42
    expected = (2 * abs(1.1 * s - 1) + 2 * abs(s - 1)) / 4
    assert M.pa_mpjpe(pred, gt).item() == pytest.approx(expected, abs=1e-12)


def test_part_errors_align_each_part_on_its_own():
    gt = cloud(20)
    pred = gt.clone()
    # Part A (first 10 points) is rotated and shifted as a block: its own PA error is zero,
    # but the whole-set PA error is not.
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.7], dtype=D))
    pred[:, :10] = pred[:, :10] @ R.T + 0.3
    assert M.part_pa_error(pred, gt, list(range(10))).item() < 1e-10
    assert M.pa_mpjpe(pred, gt).item() > 0.05


def test_root_aligned_error():
    gt = cloud(10)
    pred = gt + torch.tensor([5.0, 0, 0], dtype=D)
    assert M.root_aligned_error(pred, gt, pred[:, 0], gt[:, 0]).item() < 1e-12
    pred2 = pred.clone()
    pred2[0, 3] += torch.tensor([0, 1.0, 0], dtype=D)
    # one point of ten off by 1 after root alignment -> mean 0.1
    assert M.root_aligned_error(pred2, gt, pred2[:, :1], gt[:, :1]).item() == pytest.approx(0.1)


def test_f_score_hand_computed():
    gt = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]]], dtype=D)
    pred = torch.tensor([[[0.0, 0.001, 0], [1.0, 0.02, 0]]], dtype=D)
    # threshold 0.005: recall 1/4 (gt[0]), precision 1/2 (pred[0]) -> F = 2*(1/8)/(3/4) = 1/3
    assert M.f_score(pred, gt, 0.005).item() == pytest.approx(1 / 3)
    # threshold 1.5: gt[3] is 2 away -> recall 3/4, precision 1 -> F = 1.5 / 1.75
    assert M.f_score(pred, gt, 1.5).item() == pytest.approx(1.5 / 1.75)
    assert M.f_score(pred, gt, 2.5).item() == pytest.approx(1.0)
    assert M.f_score(pred + 10, gt, 0.005).item() == 0.0


def unit_square_mesh():
    vertices = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [1.0, 1, 0], [0.0, 1, 0]], dtype=D)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    return vertices, faces


@pytest.mark.parametrize(
    "point,expected",
    [
        ([0.5, 0.5, 2.0], 2.0),  # above the interior
        ([0.2, 0.7, -0.3], 0.3),  # below the other triangle
        ([2.0, 0.5, 0.0], 1.0),  # beside an edge
        ([2.0, 2.0, 0.0], math.sqrt(2)),  # beyond a corner
        ([-3.0, -4.0, 12.0], 13.0),  # corner (0,0,0): 3-4-12 -> 13
        ([0.5, -1.0, 1.0], math.sqrt(2)),  # over the edge y=0
    ],
)
def test_point_to_mesh_distance(point, expected):
    v, f = unit_square_mesh()
    d = M.point_to_mesh_distance(torch.tensor([point], dtype=D), v, f)
    assert d.item() == pytest.approx(expected, abs=1e-12)


def test_point_to_mesh_random_against_dense_sampling():
    g = torch.Generator().manual_seed(1)
    tri = torch.randn(1, 3, 3, generator=g, dtype=D)
    pts = torch.randn(30, 3, generator=g, dtype=D) * 2
    exact = M.point_to_mesh_distance(pts, tri[0], np.array([[0, 1, 2]]))
    u, w = torch.meshgrid(torch.linspace(0, 1, 301, dtype=D), torch.linspace(0, 1, 301, dtype=D), indexing="ij")
    keep = (u + w) <= 1
    samples = tri[0, 0] + u[keep, None] * (tri[0, 1] - tri[0, 0]) + w[keep, None] * (tri[0, 2] - tri[0, 0])
    dense = torch.cdist(pts, samples).min(1).values
    assert torch.all(exact <= dense + 1e-12)
    assert torch.all(dense - exact < 0.02)


def test_point_to_mesh_pruning_equals_brute_force(standin_tree):
    """The pruned search returns exactly the minimum over every triangle (FLAME stand-in mesh)."""
    from expose_cli.body_models.loading import load_body_model_data
    from expose_cli.io.paths import DataTree

    flame = load_body_model_data(DataTree(standin_tree).flame_model())
    verts, faces = torch.as_tensor(flame["v_template"], dtype=D), np.asarray(flame["f"])
    g = torch.Generator().manual_seed(2)
    near = verts[torch.randint(0, len(verts), (300,), generator=g)] + 0.003 * torch.randn(300, 3, generator=g, dtype=D)
    far = 0.3 * torch.randn(40, 3, generator=g, dtype=D)
    pts = torch.cat([near, far, verts[:5]])  # and points exactly on vertices
    tris = verts[torch.as_tensor(faces, dtype=torch.long)]
    brute = M.point_to_triangle_distance(pts, tris).min(dim=1).values
    pruned = M.point_to_mesh_distance(pts, verts, faces, chunk=64)
    torch.testing.assert_close(pruned, brute, atol=1e-12, rtol=0)
    assert torch.all(pruned[-5:] == 0)


def test_stirling_3drmse():
    # A flat "face" plane z=0 as prediction and scan; landmarks on it. The prediction is the scan
    # scaled, rotated and shifted: alignment undoes it, so the error is 0; then lift the scan by 2 mm.
    lm = torch.tensor(
        [[-45.0, 35, 0], [-15, 35, 0], [15, 35, 0], [45, 35, 0], [0, 0, 0], [-25, -30, 0], [25, -30, 0]], dtype=D
    )
    xs, ys = torch.meshgrid(torch.linspace(-100, 100, 21, dtype=D), torch.linspace(-100, 100, 21, dtype=D), indexing="ij")
    grid = torch.stack([xs.flatten(), ys.flatten(), torch.zeros(441, dtype=D)], -1)
    faces = []
    for i in range(20):
        for j in range(20):
            a, b, c, d = i * 21 + j, (i + 1) * 21 + j, (i + 1) * 21 + j + 1, i * 21 + j + 1
            faces += [[a, b, c], [a, c, d]]
    faces = np.array(faces)
    R = axis_angle_to_matrix(torch.tensor([0.2, 0.1, -0.4], dtype=D))
    pred_v = 0.001 * grid @ R.T + 3.0  # metres, rotated, shifted
    pred_lm = 0.001 * lm @ R.T + 3.0
    scan = grid.clone()
    assert M.stirling_3drmse(scan, lm, pred_v, faces, pred_lm).item() < 1e-9
    centre, radius = M.stirling_face_mask(lm)
    torch.testing.assert_close(centre, torch.tensor([0.0, 10.5, 0.0], dtype=D))
    assert radius.item() == pytest.approx(1.2 * (90 + 35) / 2)
    lifted = scan + torch.tensor([0.0, 0.0, 2.0], dtype=D)
    lifted_lm = lm + torch.tensor([0.0, 0.0, 2.0], dtype=D)
    # Landmarks lifted too: alignment follows them, error 0. Only the scan lifted: error 2 mm.
    assert M.stirling_3drmse(lifted, lifted_lm, pred_v, faces, pred_lm).item() < 1e-9
    assert M.stirling_3drmse(lifted, lm, pred_v, faces, pred_lm).item() == pytest.approx(2.0)
