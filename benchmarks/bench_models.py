"""Per-image forward time of the four models (full size, stand-in weights and body models).

CPU with 2 threads (and the GPU when one is present). MMHuman3D's figures on the same machine kind
(reference-model.md): body 0.644 s, face 0.101 s, hand 0.076 s, full ExPose 0.874 s at batch 1.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from expose_cli.models import build_predictor, collate, crop_person
from expose_cli.testing.checkpoints import random_net
from expose_cli.testing.standins import write_standin_data_tree

MMHUMAN3D_S = {"body": 0.644, "face": 0.101, "hand": 0.076, "expose": 0.874}


def batch_for(kind: str, n: int):
    rng = np.random.default_rng(0)
    img = (rng.random((512, 512, 3)) * 255).astype(np.uint8)
    res = 224 if kind == "hand" else 256
    return collate([crop_person(img, [150, 40, 200, 420], img_res=res, keep_full_image=kind == "expose") for _ in range(n)])


def time_call(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    torch.set_num_threads(2)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_standin_data_tree(Path(tmp))
        print(f"{'model':8s} {'device':6s} {'batch':>5s} {'s/image':>9s} {'MMHuman3D':>10s} {'speed-up':>9s}")
        for kind in ("body", "face", "hand", "expose"):
            predictor = build_predictor(random_net(kind), tree)
            for device in devices:
                predictor.to(device)
                for n in (1, 8):
                    batch = batch_for(kind, n)
                    per_image = time_call(lambda b=batch, p=predictor: p(b), 3 if n == 1 else 1) / n
                    ref = MMHUMAN3D_S[kind] if device == "cpu" and n == 1 else None
                    ref_txt = f"{ref:10.3f}" if ref else f"{'':10s}"
                    speed = f"{ref / per_image:8.2f}x" if ref else ""
                    print(f"{kind:8s} {device:6s} {n:5d} {per_image:9.3f} {ref_txt} {speed}", flush=True)


if __name__ == "__main__":
    main()
