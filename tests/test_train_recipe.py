"""The seed's data recipe: Human3.6M trains no 2D keypoints unless asked; evaluation-style samples."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from expose_cli.io.paths import DataTree
from expose_cli.models.model import Prediction
from expose_cli.testing.trees import link_tree
from expose_cli.training.config import LossConfig, apply_settings, run_preset
from expose_cli.training.data_config import data_preset
from expose_cli.training.datasets import build_train_dataset, collate
from expose_cli.training.objective import compute_losses
from expose_cli.training.synth import write_synth

R = 64  # crop side (px)


@pytest.fixture(scope="module")
def data_dir(standin_tree, tmp_path_factory) -> Path:
    """A data tree whose ``curated_fits`` and ``h36m_smplx`` members are copies of one small
    synthetic body set (4 rows)."""
    root = tmp_path_factory.mktemp("recipe")
    link_tree(Path(standin_tree) / "body_models", root / "body_models")
    pre = root / "preprocessed_datasets"
    h5 = write_synth(root / "synth", "body", 4, DataTree(root), seed=1, size=96)
    pre.mkdir()
    for name in ("curated_fits", "h36m_smplx"):
        shutil.copy(h5, pre / f"{name}_train.h5")
    return root


def _data(**changes):
    base = data_preset("body")
    return replace(base, members=("curated_fits", "h36m_smplx"), ratios=(0.2, 0.8), img_res=R, **changes)


def _batch(cfg, data_dir: Path) -> dict:
    """Six rows, evaluation-style: rows 0-3 curated fits, 4-5 Human3.6M (its rows 0 and 1)."""
    dataset = build_train_dataset(cfg, data_dir, "body", seed=0, augment=False)
    return collate([dataset[i] for i in range(6)])


def keypoints2d_by_hand(pred_ndc: np.ndarray, gt: np.ndarray, rows) -> float:
    """The seed's 2D term written out: (1/B') sum_b sum_j sum_xy c |p - (2 x / (R - 1) - 1)|."""
    total = 0.0
    for b in rows:
        for j in range(gt.shape[1]):
            c = gt[b, j, 2]
            for a in range(2):
                total += c * abs(pred_ndc[b, j, a] - (2.0 * gt[b, j, a] / (R - 1) - 1.0))
    return total / len(rows)


def _fixed_prediction(n: int) -> tuple[Prediction, np.ndarray]:
    """Joints and a camera (seeded) whose projection ``s (X_xy + t)`` is known."""
    g = torch.Generator().manual_seed(0)
    joints = torch.randn(n, 144, 3, generator=g, dtype=torch.float64) * 0.3
    camera = torch.tensor([[0.9, 0.05, -0.1]], dtype=torch.float64).expand(n, 3)
    pred = Prediction("body", {}, torch.zeros(n, 10, dtype=torch.float64), None, camera, joints=joints)
    ndc = 0.9 * (joints[..., :2].numpy() + np.array([0.05, -0.1]))
    return pred, ndc


ONLY_2D = LossConfig(keypoints3d=0, keypoints2d=1, global_orient=0, body_pose=0, jaw_pose=0, hand_pose=0, betas=0,
                     expression=0, shape_prior=0)


def test_human36m_rows_train_no_2d_keypoints_unless_switched_on(data_dir):
    assert data_preset("body").skip_keypoints2d == ("h36m_smplx",)
    assert data_preset("expose").skip_keypoints2d == ("h36m_smplx",)
    pred, ndc = _fixed_prediction(6)

    off = _batch(_data(), data_dir)
    assert off["has_keypoints2d"].tolist() == [1, 1, 1, 1, 0, 0]
    assert not off["keypoints2d"][4:].any()  # as a file without 2D keypoints
    term = float(compute_losses(pred, {k: v.double() for k, v in off.items()}, ONLY_2D)["keypoints2d"])
    expected = keypoints2d_by_hand(ndc, off["keypoints2d"].double().numpy(), rows=range(4))
    assert term == pytest.approx(expected, rel=1e-9)  # the curated-fits rows only, over B' = 4

    on = _batch(_data(skip_keypoints2d=()), data_dir)
    assert on["has_keypoints2d"].tolist() == [1] * 6 and on["keypoints2d"][4:, :, 2].sum() > 0
    assert torch.equal(on["keypoints2d"][:4], off["keypoints2d"][:4])
    term_on = float(compute_losses(pred, {k: v.double() for k, v in on.items()}, ONLY_2D)["keypoints2d"])
    expected_on = keypoints2d_by_hand(ndc, on["keypoints2d"].double().numpy(), rows=range(6))
    assert term_on == pytest.approx(expected_on, rel=1e-9) and abs(term_on - term) > 1e-3
    # the one --set that turns them on, as the command line gives it
    cfg = apply_settings(run_preset("body"), None, ["data.skip_keypoints2d=[]"])
    assert cfg.data.skip_keypoints2d == ()
    cfg = apply_settings(cfg, None, ["data.skip_keypoints2d=['h36m_smplx']"])  # and back, from empty
    assert cfg.data.skip_keypoints2d == ("h36m_smplx",)


def test_evaluation_style_samples_are_the_stored_box_crop(data_dir):
    """``augment=False``: every epoch and draw gives the same sample, cropped from the stored box
    with the affine written out by hand; with augmentation two draws differ."""
    cfg = _data(skip_keypoints2d=())
    plain = build_train_dataset(cfg, data_dir, "body", seed=0, augment=False)
    augmented = build_train_dataset(cfg, data_dir, "body", seed=0)
    a, b = plain[(1, 0, 0)], plain[(1, 3, 7)]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    c, d = augmented[(1, 0, 0)], augmented[(1, 3, 7)]
    assert not torch.equal(c["img"], d["img"])
    with h5py.File(data_dir / "preprocessed_datasets" / "curated_fits_train.h5") as f:
        x, y, w, h = f["bbox_xywh"][1]
        kp = f["keypoints2d"][1]
    s, cx, cy = max(w, h), x + w / 2, y + h / 2
    t = np.array([[R / s, 0, R / 2 - R / s * cx], [0, R / s, R / 2 - R / s * cy]])
    np.testing.assert_allclose(a["crop_transform"].numpy(), t, rtol=1e-5, atol=1e-4)
    seen = kp[:, 2] > 0
    np.testing.assert_allclose(a["keypoints2d"][seen, :2].numpy(), kp[seen, :2] @ t[:, :2].T + t[:, 2], atol=1e-3)
    np.testing.assert_array_equal(a["keypoints2d"][:, 2].numpy(), kp[:, 2])
