"""Per-image forward time of the four models (full size, stand-in weights and body models).

CPU with 2 threads (and the GPU when one is present). Two baselines:
- ``plain``: the same weights run the way MMHuman3D runs them, measured on this machine: unfused
  BatchNorms, channels-first memory, ``torch.no_grad`` instead of inference mode, and a full SMPL-X
  pass for the attention keypoints (the full model's second body-model pass).
- MMHuman3D's own figures on this machine kind (reference-model.md): body 0.644 s, face 0.101 s,
  hand 0.076 s, full ExPose 0.874 s at batch 1. Machines of one kind differ, so the same-machine
  ``plain`` ratio is the fairer one.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from expose_cli.models import Predictor, build_predictor, collate, crop_person, preset
from expose_cli.testing.checkpoints import random_net
from expose_cli.testing.standins import write_standin_data_tree

MMHUMAN3D_S = {"body": 0.644, "face": 0.101, "hand": 0.076, "expose": 0.874}


def batch_for(kind: str, n: int):
    rng = np.random.default_rng(0)
    img = (rng.random((512, 512, 3)) * 255).astype(np.uint8)
    res = preset(kind).img_res  # the model's input crop
    return collate([crop_person(img, [150, 40, 200, 420], img_res=res, keep_full_image=kind == "expose") for _ in range(n)])


def time_call(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def plain_predictor(fast: Predictor) -> Predictor:
    """The same network and body model without our inference shortcuts."""
    plain = Predictor(fast.net, fast.body_model, fast.j14, fuse=False)
    plain.keypoint_model = None
    return plain


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu",
                        help="comma-separated: cpu, cuda")
    parser.add_argument("--kinds", default="body,face,hand,expose")
    args = parser.parse_args()
    torch.set_num_threads(2)
    devices = args.devices.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_standin_data_tree(Path(tmp))
        print(f"{'model':8s} {'device':6s} {'batch':>5s} {'s/image':>9s} {'plain':>9s} {'x plain':>8s} "
              f"{'MMHuman3D':>10s} {'x MMH3D':>8s}")
        for kind in args.kinds.split(","):
            predictor = build_predictor(random_net(kind), tree)
            for device in devices:
                predictor.to(device)
                plain = plain_predictor(predictor).to(device)
                sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

                def run_plain(b, p=plain, sync=sync):
                    with torch.no_grad():
                        p.predict(b.to(p.device))
                    sync()

                for n in (1, 8):
                    batch = batch_for(kind, n)
                    repeats = 20 if device == "cuda" else 5 if n == 1 else 2
                    per_image = time_call(lambda b=batch, p=predictor, sync=sync: (p(b), sync()), repeats) / n
                    plain_s = time_call(lambda b=batch: run_plain(b), repeats) / n
                    ref = MMHUMAN3D_S[kind] if device == "cpu" and n == 1 else None
                    ref_txt = f"{ref:10.3f} {ref / per_image:7.2f}x" if ref else ""
                    print(f"{kind:8s} {device:6s} {n:5d} {per_image:9.3f} {plain_s:9.3f} {plain_s / per_image:7.2f}x "
                          f"{ref_txt}", flush=True)


if __name__ == "__main__":
    main()
