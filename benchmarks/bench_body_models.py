"""SMPL-X forward time on the stand-in model (CPU with 2 threads, or ``--device cuda``): prints ms
per call at batch 1 and 64."""

from __future__ import annotations

import tempfile
import time

import torch

from expose_cli.body_models import build_smplx
from expose_cli.testing.standins import write_standin_data_tree


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    device = parser.parse_args().device
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_standin_data_tree(tmp)
        t0 = time.perf_counter()
        model = build_smplx(tree).to(device)
        print(f"build SMPL-X layer: {1000 * (time.perf_counter() - t0):.0f} ms")
    for batch in (1, 64):
        eye = torch.eye(3, device=device)
        kwargs = dict(
            betas=torch.zeros(batch, 10, device=device), expression=torch.zeros(batch, 10, device=device),
            global_orient=eye.expand(batch, 1, 3, 3), body_pose=eye.expand(batch, 21, 3, 3),
            left_hand_pose=eye.expand(batch, 15, 3, 3), right_hand_pose=eye.expand(batch, 15, 3, 3),
            jaw_pose=eye.expand(batch, 1, 3, 3), leye_pose=eye.expand(batch, 1, 3, 3), reye_pose=eye.expand(batch, 1, 3, 3),
        )
        with torch.inference_mode():
            model(**kwargs)
            sync()
            runs = 20 if batch == 1 or device != "cpu" else 3
            t0 = time.perf_counter()
            for _ in range(runs):
                model(**kwargs)
            sync()
            dt = (time.perf_counter() - t0) / runs
        print(f"SMPL-X forward ({device}), batch {batch:3d}: {1000 * dt:8.1f} ms/call  {1000 * dt / batch:7.2f} ms/body")


if __name__ == "__main__":
    main()
