"""Training benchmark: the learning curve (loss and held-out PA-MPJPE every N steps) and training
samples/s, on the synthetic set with stand-in body models.

    python benchmarks/bench_train.py --kind body --steps 60 --every 20 --threads 2 [--json out.json]

CPU figures only when no GPU is present: the GPU figures of docs/train.md (real-size body preset
at batch 48, bf16 and fp32; the full model at batch 48) need a CUDA device (`--device cuda`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from conditions import cpu_model  # benchmarks/conditions.py

#: The learning-proof settings (tests/test_train_learns.py, which says why): no augmentation, no
#: dropout, BatchNorm statistics trained (from scratch), the shape prior holding betas at the mean.
LEARNABLE = {"data.augment.flip_prob": 0.0, "data.augment.scale_factor": 0.0, "data.augment.rot_prob": 0.0,
             "data.augment.jitter_factor": 0.0, "data.augment.noise_factor": 0.0, "data.augment.low_res_factors": [1.0],
             "train.norm_eval": False, "loss.shape_prior_margin": 0.0, "loss.shape_prior": 100.0}
#: ``--kind all``: each kind with the learning test's plan (samples, steps, batch, lr, pitch).
ALL = {"hand": (256, 200, 32, 1e-3, 90.0), "face": (256, 100, 32, 1e-3, 0.0), "body": (128, 80, 32, 2e-3, 0.0)}


def make_config(kind: str, h5: Path, args):
    from expose_cli.kinds import KINDS
    from expose_cli.training.config import check, parse_value, run_preset, set_field

    cfg = run_preset(kind, small=not args.full_size)
    settings = {"data.members": [str(h5)], "data.ratios": [1.0], "data.img_res": args.img_res, f"{KINDS[kind].config_section}.img_res": args.img_res,
                "train.batch_size": args.batch_size, "train.workers": args.workers, "train.init": "none",
                "train.val_set": "none", "train.log_every": 1, "train.lr": args.lr, "train.epochs": 10**6,
                "train.precision": args.precision, "train.last_every": 0}
    if args.learnable:
        settings.update(LEARNABLE)
        settings[f"{kind}.dropout"] = 0.0
    for key, value in settings.items():
        set_field(cfg, key, value)
    for item in args.set:
        key, _, raw = item.partition("=")
        set_field(cfg, key, parse_value(raw))
    check(cfg)
    return cfg


def learning_curve(kind: str, args, root: Path) -> dict:
    """Train in chunks of ``every`` steps; after each, held-out PA-MPJPE and the chunk's samples/s."""
    from torch.utils.data import DataLoader

    from expose_cli.testing.standins import write_standin_data_tree
    from expose_cli.training import run as R
    from expose_cli.training.data_config import with_members
    from expose_cli.training.datasets import TrainDataset, collate
    from expose_cli.training.synth import write_synth
    from expose_cli.training.validation import face_contour_indices, heldout_errors

    tree = write_standin_data_tree(root / "data")
    family = dict(pose_dims=args.pose_dims, orient_range=args.orient_range, pitch=args.pitch)
    train_h5 = write_synth(root / "train", kind, args.samples, tree, seed=0, size=args.render, **family)
    held_h5 = write_synth(root / "held", kind, args.heldout, tree, seed=1, size=args.render, **family)
    cfg = make_config(kind, train_h5, args)
    held = TrainDataset(with_members(cfg.data, (str(held_h5),)), tree.root, kind, 0, train=False)
    loader = DataLoader(held, batch_size=16, collate_fn=collate)
    skip = face_contour_indices(kind) if args.no_contour else None
    cfg.train.max_steps = 1
    trainer, _ = R.run(cfg, tree, root / "run", log=lambda m: None)  # one step: builds everything
    model = trainer.model
    curve = [{"step": 0, "pa_mpjpe_mm": float(np.mean(heldout_errors(model.eval(), loader, mean_pose=True, exclude=skip))),
              "note": "mean-pose prediction"}]
    print(json.dumps(curve[0]), flush=True)
    model.train()
    while trainer.progress.step < args.steps:
        cfg.train.max_steps = min(args.steps, trainer.progress.step + args.every)
        done_before, tic = trainer.progress.step, time.perf_counter()
        trainer.fit()
        rate = (trainer.progress.step - done_before) * args.batch_size / (time.perf_counter() - tic)
        err = float(np.mean(heldout_errors(model.eval(), loader, exclude=skip)))
        model.train()
        curve.append({"step": trainer.progress.step, "loss": trainer.last_parts["loss"], "pa_mpjpe_mm": err,
                      "samples_per_s": rate})
        print(json.dumps(curve[-1]), flush=True)
    return {"kind": kind, "curve": curve}


def test_plan(args, kind: str) -> argparse.Namespace:
    """``args`` with the learning test's settings for ``kind`` (the lr drops x0.1 after 3/4 of the steps)."""
    samples, steps, batch, lr, pitch = ALL[kind]
    drop = max(1, (steps * 3 // 4) * batch // samples)
    return argparse.Namespace(**{**vars(args), "samples": samples, "steps": steps, "every": steps // 4, "batch_size": batch,
                                 "lr": lr, "pitch": pitch, "pose_dims": 1, "orient_range": 0.0, "learnable": True,
                                 "no_contour": False, "set": [*args.set, f"train.milestones=[{drop}]"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="body", choices=["body", "hand", "face", "all"],
                        help="all: the three kinds with the learning test's settings (--learnable, 1-D family)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--heldout", type=int, default=32)
    parser.add_argument("--render", type=int, default=96, help="synthetic image side (px)")
    parser.add_argument("--img-res", type=int, default=64, help="network crop side (px)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--full-size", action="store_true", help="the preset's widths, not the small test config")
    parser.add_argument("--pose-dims", type=int, default=0, help="synthetic pose family size (0: independent joints)")
    parser.add_argument("--orient-range", type=float, default=60.0, help="synthetic yaw range (degrees)")
    parser.add_argument("--pitch", type=float, default=0.0, help="synthetic turn about x (degrees)")
    parser.add_argument("--learnable", action="store_true", help="no augmentation, no dropout (the learning-proof test)")
    parser.add_argument("--no-contour", action="store_true",
                        help="score PA-MPJPE without the 17 face-contour points (the stand-ins' yaw table is random)")
    parser.add_argument("--set", action="append", default=[], help="section.field=value, as `expose --set`")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        if args.kind == "all":
            result = {"kinds": [learning_curve(kind, test_plan(args, kind), Path(tmp) / kind) for kind in ALL]}
        else:
            result = learning_curve(args.kind, args, Path(tmp))
    result.update(date=time.strftime("%Y-%m-%d"), cpu=cpu_model(), threads=args.threads, torch=torch.__version__,
                  gpu="not measured (no GPU in this session)" if not torch.cuda.is_available() else torch.cuda.get_device_name())
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
