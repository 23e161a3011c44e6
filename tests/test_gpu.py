"""CUDA checks: the models on a GPU give the CPU's outputs; reduced precision stays close.

Skipped where torch sees no CUDA device (CI); run them on a GPU machine with
``python -m pytest -q tests/test_gpu.py``.
"""

from __future__ import annotations

import json

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


def test_collate_on_the_gpu_equals_the_cpu_batch():
    """The pipeline's GPU batch (pinned, asynchronous copies, full images padded on the device)."""
    rng = np.random.default_rng(1)
    small, large = ((rng.random(s) * 255).astype(np.uint8) for s in ((200, 300, 3), (240, 320, 3)))
    crops = [crop_person(im, [20, 20, 100, 150], img_res=64, keep_full_image=True) for im in (small, large, large)]
    cpu, gpu = collate(crops), collate(crops, "cuda")
    assert gpu.full_images.device.type == "cuda" and gpu.img.device.type == "cuda"
    for name in ("img", "crop_transform", "box_size", "full_images"):
        torch.testing.assert_close(getattr(gpu, name).cpu(), getattr(cpu, name), rtol=0, atol=0)


def test_infer_pipeline_on_the_gpu_equals_the_cpu(infer_tree, tmp_path):
    """`expose infer` with worker processes on a GPU: the same persons and meshes as on the CPU."""
    import cv2

    from expose_cli.inference.inputs import discover_inputs
    from expose_cli.inference.loading import crop_spec
    from expose_cli.inference.options import InferOptions
    from expose_cli.inference.pipeline import run_inference
    from expose_cli.models import load_model

    (tmp_path / "in").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "in" / f"{i}.jpg"), (np.random.default_rng(i).random((240, 320, 3)) * 255).astype(np.uint8))
    out = {}
    for device in ("cpu", "cuda"):
        predictor = load_model("expose", DataTree(infer_tree), device)
        summary = run_inference(discover_inputs([tmp_path / "in"]), predictor,
                                InferOptions(out_dir=tmp_path / device, crop=crop_spec(predictor, detector="full-image"),
                                             formats=("npz",), batch_size=2, workers=2))
        assert summary["failed"] == 0 and [r["persons"] for r in summary["inputs"]] == [1, 1, 1]
        out[device] = [np.load(tmp_path / device / str(i) / "person_00.npz")["vertices"] for i in range(3)]
    for a, b in zip(out["cpu"], out["cuda"], strict=True):  # cuDNN/TF32 kernels: as the model test above
        assert np.abs(a - b).max() < 2e-3


def test_train_with_validation_on_the_gpu(run_cli, standin_tree, tmp_path):
    """`expose --device cuda train` with a validation each epoch: the model is on the GPU, the
    validation's batches must go there too (it wraps the training model in a Predictor), twice."""
    from tests.train_setup import hand_run_with_validation

    data, small = hand_run_with_validation(run_cli, standin_tree, tmp_path)
    res = run_cli("--data-dir", data, "--device", "cuda", *small, "train", "hand", "--out", tmp_path / "h",
                  "--init", "none", "--epochs", "2", "--val-every", "1", "--batch-size", "2", "--workers", "0",
                  "--precision", "bf16")
    assert res.exit_code == 0, res.output
    log = [json.loads(x) for x in (tmp_path / "h" / "log.jsonl").read_text().splitlines()]
    val = [r for r in log if r["type"] == "val"]
    assert [r["epoch"] for r in val] == [1, 2] and all(np.isfinite(r["PA-MPJPE"]) for r in val)
    assert (tmp_path / "h" / "best.pth").is_file()
