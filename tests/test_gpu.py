"""CUDA checks: the models on a GPU give the CPU's outputs; reduced precision stays close.

Skipped where torch sees no CUDA device (CI); run them on a GPU machine with
``python -m pytest -q tests/test_gpu.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expose_cli.body_models import build_smplx
from expose_cli.geometry.rotations import axis_angle_to_matrix
from expose_cli.io.paths import DataTree
from expose_cli.models import build_predictor, collate, crop_person, preset
from expose_cli.testing.checkpoints import random_net

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def batch_for(kind: str, n: int = 2):
    rng = np.random.default_rng(0)
    img = (rng.random((480, 640, 3)) * 255).astype(np.uint8)
    res = preset(kind).img_res  # the model's input crop
    boxes = [[200, 40, 180, 400], [60, 100, 150, 300]][:n]
    return collate([crop_person(img, b, img_res=res, keep_full_image=kind == "expose") for b in boxes])


def test_smplx_batch_64_on_gpu(standin_tree):
    tree = DataTree(standin_tree)
    n = 64
    g = torch.Generator().manual_seed(0)
    pose = axis_angle_to_matrix(torch.randn(n, 21, 3, generator=g) * 0.2).float()
    betas = torch.randn(n, 10, generator=g)
    with torch.inference_mode():
        gpu = build_smplx(tree).cuda()(body_pose=pose.cuda(), betas=betas.cuda())
        cpu = build_smplx(tree)(body_pose=pose, betas=betas)
    assert gpu.vertices.shape == (n, 10475, 3) and torch.isfinite(gpu.vertices).all()
    torch.testing.assert_close(gpu.vertices.cpu(), cpu.vertices, atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", ["body", "hand", "face", "expose"])
def test_full_size_models_on_gpu_match_cpu(kind, standin_tree):
    tree = DataTree(standin_tree)
    predictor = build_predictor(random_net(kind), tree)
    batch = batch_for(kind)
    cpu = predictor(batch)
    gpu = predictor.to("cuda")(batch)
    # Different kernels (cuDNN, TF32 where torch allows it): float32 agreement, not bit equality.
    torch.testing.assert_close(gpu.camera.cpu(), cpu.camera, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(gpu.vertices.cpu(), cpu.vertices, atol=2e-3, rtol=0)
    if kind == "expose":
        for side in ("left", "right"):
            torch.testing.assert_close(gpu.hand_boxes[side]["center"].cpu(), cpu.hand_boxes[side]["center"], atol=0.05, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_stays_close(dtype, standin_tree):
    predictor = build_predictor(random_net("expose"), DataTree(standin_tree)).to("cuda")
    batch = batch_for("expose")
    full = predictor(batch)
    with torch.autocast("cuda", dtype=dtype):
        low = predictor(batch)
    err = (low.vertices.float() - full.vertices).abs().max().item()
    assert err < 0.05, f"{dtype}: vertices differ by {err:.4f} m"


def test_sparse_keypoints_from_a_body_model_already_on_gpu(standin_tree):
    from expose_cli.body_models.sparse_keypoints import SMPLXKeypoints

    model = build_smplx(DataTree(standin_tree)).cuda()
    sparse = SMPLXKeypoints(model)  # built from CUDA buffers
    g = torch.Generator().manual_seed(1)
    n = 4

    def rots(j):
        return axis_angle_to_matrix(0.5 * torch.randn(n, j, 3, generator=g)).float().cuda()

    args = dict(global_orient=rots(1), body_pose=rots(21), left_hand_pose=rots(15), right_hand_pose=rots(15),
                jaw_pose=rots(1), leye_pose=rots(1), reye_pose=rots(1),
                betas=torch.randn(n, 10, generator=g).cuda(), expression=torch.randn(n, 10, generator=g).cuda())
    with torch.inference_mode():
        torch.testing.assert_close(sparse(**args), model(**args).joints, atol=1e-4, rtol=0)
