"""How far H3.6M's thorax and head joints are from SMPL-X's neck and head on SMPL-X fits (mm): the
measurement behind keeping 13 (not MMHuman3D's 15) Human3.6M 3D joints (docs/preprocess.md).

For each fit (ExPose curated fits: ``pose`` [N, 55, 3], ``betas`` [N, 10]): SMPL-X's joints from the
SMPL-X model; H3.6M's from the SMPL model driven by the same global orientation, 21 body joints
(SMPL's two hand joints at rest) and betas, through ``J_regressor_h36m`` (how SPIN / MMHuman3D
get H3.6M joints from a mesh). Both are centred on their pelvis. Prints the mean, median and 90th
percentile of |thorax - neck| and |head_h36m - head|.

    python benchmarks/measure_h36m_neck_head.py --data-dir data --fits data/datasets/ExPose_curated_fits/train.npz
    python benchmarks/measure_h36m_neck_head.py --standin   # stand-in models and the curated-fits fixture

With ``--standin`` the figure describes the stand-ins only: their ``J_regressor_h36m`` rows are
means of vertices near stand-in SMPL joints, not H3.6M's markers.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from expose_cli.body_models import build_smpl, build_smplx
from expose_cli.body_models.auxiliary import Auxiliary
from expose_cli.body_models.keypoints import H36M17
from expose_cli.geometry.rotations import axis_angle_to_matrix
from expose_cli.io.paths import DataTree

SMPLX_PELVIS, SMPLX_NECK, SMPLX_HEAD = 0, 12, 15
H36M_PELVIS, H36M_THORAX, H36M_HEAD = (H36M17.index(n) for n in ("pelvis", "thorax", "head_h36m"))


def measure(tree: DataTree, pose: np.ndarray, betas: np.ndarray) -> dict[str, np.ndarray]:
    """Per fit: |H3.6M thorax - SMPL-X neck| and |H3.6M head - SMPL-X head| (mm), pelvis-centred."""
    d = torch.float64
    n = len(pose)
    rot = axis_angle_to_matrix(torch.as_tensor(pose, dtype=d).reshape(n, 55, 3))
    b = torch.as_tensor(betas[:, :10], dtype=d)
    eye = torch.eye(3, dtype=d).expand(n, 1, 3, 3)
    with torch.no_grad():
        sx = build_smplx(tree, dtype=d)(global_orient=rot[:, :1], body_pose=rot[:, 1:22], betas=b).joints
        smpl_pose = torch.cat([rot[:, 1:22], eye, eye], dim=1)  # SMPL's hand joints 22, 23 at rest
        verts = build_smpl(tree, "neutral", dtype=d)(global_orient=rot[:, :1], body_pose=smpl_pose, betas=b).vertices
    h36m = torch.einsum("jv,bvc->bjc", torch.as_tensor(Auxiliary(tree).j_regressor_h36m(), dtype=d), verts)
    sx = sx - sx[:, SMPLX_PELVIS:SMPLX_PELVIS + 1]
    h36m = h36m - h36m[:, H36M_PELVIS:H36M_PELVIS + 1]
    return {"thorax-neck": 1000 * torch.linalg.norm(h36m[:, H36M_THORAX] - sx[:, SMPLX_NECK], dim=-1).numpy(),
            "head-head": 1000 * torch.linalg.norm(h36m[:, H36M_HEAD] - sx[:, SMPLX_HEAD], dim=-1).numpy()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="data tree with SMPL-X, SMPL and J_regressor_h36m.npy")
    parser.add_argument("--fits", type=Path, help="curated fits .npz (pose, betas)")
    parser.add_argument("--standin", action="store_true", help="stand-in models and the curated-fits fixture")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        if args.standin:
            from expose_cli.testing.raw_datasets import write_curated_fits
            from expose_cli.testing.standins import write_standin_data_tree

            tree = write_standin_data_tree(Path(tmp) / "data")
            data = write_curated_fits(Path(tmp) / "fits", n=64)
        else:
            tree, data = DataTree(args.data_dir), dict(np.load(args.fits, allow_pickle=False))
        out = measure(tree, np.asarray(data["pose"]), np.asarray(data["betas"]))
    for name, d in out.items():
        print(f"{name}: mean {d.mean():.1f} mm, median {np.median(d):.1f} mm, p90 {np.percentile(d, 90):.1f} mm "
              f"({len(d)} fits{', stand-ins' if args.standin else ''})")


if __name__ == "__main__":
    main()
