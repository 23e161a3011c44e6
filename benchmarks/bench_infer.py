"""`expose infer` throughput on the full-size model (stand-in weights and body models), CPU 2 threads.

Prints images/s at batch 1 and 8 (one person per image) split into decode, detection, model
(networks + body model), writing (npz + obj), and the overlay time of a 1080p frame.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from expose_cli.inference.inputs import discover_inputs
from expose_cli.inference.pipeline import InferOptions, run_inference
from expose_cli.inference.render import render_overlay
from expose_cli.models import build_predictor
from expose_cli.testing.checkpoints import random_net
from expose_cli.testing.standins import write_standin_data_tree


def main() -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tree = write_standin_data_tree(tmp / "data")
        predictor = build_predictor(random_net("expose"), tree)
        images = tmp / "images"
        images.mkdir()
        rng = np.random.default_rng(0)
        n = 8
        for i in range(n):
            cv2.imwrite(str(images / f"{i:03d}.jpg"), (rng.random((720, 1280, 3)) * 255).astype(np.uint8))
        boxes = {f"{i:03d}.jpg": [[500, 100, 760, 700]] for i in range(n)}
        for batch in (1, 8):
            opts = InferOptions(out_dir=tmp / f"out{batch}", batch_size=batch, boxes=boxes, formats=("npz", "obj"))
            t0 = time.perf_counter()
            summary = run_inference(discover_inputs([images]), predictor, opts)
            total = time.perf_counter() - t0
            parts = {k: sum(r["timings"].get(k, 0.0) for r in summary["inputs"]) / n
                     for k in ("decode_s", "detect_s", "model_s", "write_s")}
            print(f"batch {batch}: {n / total:.2f} images/s  per image: " +
                  "  ".join(f"{k[:-2]} {1000 * v:.0f} ms" for k, v in parts.items()), flush=True)
        npz = np.load(tmp / "out1" / "000" / "person_00.npz")
        frame = (rng.random((1080, 1920, 3)) * 255).astype(np.uint8)
        meshes = [(npz["vertices_camera"], npz["faces"])] * 2
        render_overlay(frame, meshes, 5000.0)
        t0 = time.perf_counter()
        for _ in range(3):
            render_overlay(frame, meshes, 5000.0)
        print(f"overlay of 2 persons on a 1080p frame: {1000 * (time.perf_counter() - t0) / 3:.0f} ms")
        json.dumps(summary)


if __name__ == "__main__":
    main()
