"""`expose infer` throughput on the full-size model (stand-in weights and body models).

CPU with 2 threads, and the GPU when one is present. Prints images/s at batch 1 and 8 (one person
per 1280x720 image, boxes from a file) and with the built-in HOG detector, split into decode,
detection, model (networks + body model), writing (npz + obj); the model time is split further by
timing the SMPL-X passes alone at the same batch size; and the overlay time of a 1080p frame.
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


def body_model_seconds(predictor, batch: int, device: str, repeats: int = 5) -> float:
    """One sparse keypoint pass + one full SMPL-X pass (what the full model runs per batch)."""
    eye = torch.eye(3, device=device)
    rot = {"global_orient": eye.expand(batch, 1, 3, 3), "body_pose": eye.expand(batch, 21, 3, 3),
           "left_hand_pose": eye.expand(batch, 15, 3, 3), "right_hand_pose": eye.expand(batch, 15, 3, 3),
           "jaw_pose": eye.expand(batch, 1, 3, 3)}
    betas, expr = torch.zeros(batch, 10, device=device), torch.zeros(batch, 10, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.inference_mode():
        for k in range(repeats + 1):
            if k == 1:
                sync()
                t0 = time.perf_counter()
            predictor._smplx(rot, betas, expr, keypoints_only=True)
            predictor._smplx(rot, betas, expr)
        sync()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    torch.set_num_threads(2)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tree = write_standin_data_tree(tmp / "data")
        predictor = build_predictor(random_net("expose"), tree).to(device)
        print(f"device: {device}")
        images = tmp / "images"
        images.mkdir()
        rng = np.random.default_rng(0)
        n = 8
        for i in range(n):
            cv2.imwrite(str(images / f"{i:03d}.jpg"), (rng.random((720, 1280, 3)) * 255).astype(np.uint8))
        boxes = {f"{i:03d}.jpg": [[500, 100, 760, 700]] for i in range(n)}
        run_inference(discover_inputs([images]), predictor,  # warm-up (fused backbones, allocator)
                      InferOptions(out_dir=tmp / "warm", batch_size=8, boxes=boxes, formats=("npz",)))
        for batch, use_boxes in ((1, True), (8, True), (8, False)):
            opts = InferOptions(out_dir=tmp / f"out{batch}{use_boxes}", batch_size=batch,
                                boxes=boxes if use_boxes else None, formats=("npz", "obj"))
            t0 = time.perf_counter()
            summary = run_inference(discover_inputs([images]), predictor, opts)
            total = time.perf_counter() - t0
            parts = {k: sum(r["timings"].get(k, 0.0) for r in summary["inputs"]) / n
                     for k in ("decode_s", "detect_s", "model_s", "write_s")}
            persons = sum(int(r.get("persons", 0)) for r in summary["inputs"])
            label = "boxes file" if use_boxes else "HOG detector on noise images"
            line = (f"batch {batch} ({label}, {persons} persons): {n / total:.2f} images/s  per image: " +
                    "  ".join(f"{k[:-2]} {1000 * v:.0f} ms" for k, v in parts.items()))
            if persons:
                body = body_model_seconds(predictor, batch, device) / batch
                line += f"  (of model: body model {1000 * body:.1f} ms, networks {1000 * (parts['model_s'] - body):.0f} ms)"
            print(line, flush=True)
        npz = np.load(tmp / "out1True" / "000" / "person_00.npz")
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
