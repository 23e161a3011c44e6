"""Each stage of ``expose infer clip.mp4`` on a 1080p clip, against the model alone.

A synthetic 1920x1080 MP4 (OpenCV, a moving rectangle over noise, or with ``--background smooth``
over smooth gradients, which encode more like a camera's frames than noise does), one person per
frame (the whole frame as its box, ``--detector full-image``, so no detector cost), the full-size
full model with stand-in weights and body models, on the runtime ``--backend auto`` picks, 2
threads, batch 8:

- model alone: the predictor on the frames' crops, cropped and collated beforehand;
- end to end: ``run_inference`` (decode, crop, model, tracks, smoothing, motion files, npz), then
  the same with ``--render`` (``overlay.mp4``).

Runs the three ``--repeats`` times, interleaved, and prints the medians: frames/s of each, the
ratio end to end / model alone (targets: >= 0.85; ``--render`` at most 20% more time), the CPU
seconds of the two end-to-end runs (this process's; on a shared machine they move less than wall
time) and the summed seconds of each stage from ``summary.json``'s timings.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from conditions import conditions  # benchmarks/conditions.py

from expose_cli.inference.backends import make_predictor, runtime_info
from expose_cli.inference.inputs import discover_inputs
from expose_cli.inference.loading import crop_spec
from expose_cli.inference.options import InferOptions
from expose_cli.inference.pipeline import run_inference
from expose_cli.inference.video import TrackOptions
from expose_cli.models import build_predictor, collate, crop_person
from expose_cli.testing.checkpoints import random_net
from expose_cli.testing.standins import write_standin_data_tree

STAGES = ("decode_s", "detect_s", "crop_s", "model_s", "write_s")


def write_clip(path: Path, frames: int, size=(1920, 1080), fps: float = 30.0, background: str = "noise") -> None:
    """An MP4 (1080p by default) of a moving rectangle over noise, or over smooth gradients (``background``)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        if background == "noise":
            frame = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
        else:  # drifting colour gradients and soft waves
            waves = [128 + 90 * np.sin((x * a + y * b) / 300 + i / 8) for a, b in ((1, 0.3), (0.2, 1), (0.7, -0.7))]
            frame = np.clip(np.stack(waves, -1), 0, 255).astype(np.uint8)
        cv2.rectangle(frame, (700 + 10 * i, 200), (1100 + 10 * i, 1000), (40, 160, 220), -1)
        writer.write(frame)
    writer.release()


def model_alone(predictor, clip: Path, frames: int, batch: int) -> float:
    """Seconds of the model on the clip's ``frames`` persons (crops made beforehand)."""
    cap = cv2.VideoCapture(str(clip))
    crops = []
    for _ in range(frames):
        ok, frame = cap.read()
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        crops.append(crop_person(rgb, [0, 0, rgb.shape[1], rgb.shape[0]], img_res=predictor.img_res,
                                 scale_factor=1.0, keep_full_image=True))
    batches = [collate(crops[k:k + batch]) for k in range(0, frames, batch)]
    t0 = time.perf_counter()
    for b in batches:
        predictor(b)
    return time.perf_counter() - t0


def end_to_end(predictor, clip: Path, out: Path, render: bool, batch: int) -> tuple[float, float, dict]:
    """Wall and CPU seconds (this process, all its threads) of ``run_inference`` on the clip, and each
    stage's summed seconds."""
    options = InferOptions(out_dir=out, formats=("npz",), render=render, crop=crop_spec(predictor, detector="full-image"),
                           batch_size=batch, tracks=TrackOptions(), workers=0)
    t0, c0 = time.perf_counter(), time.process_time()
    run_inference(discover_inputs([str(clip)]), predictor, options)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    records = json.loads((out / "summary.json").read_text())["inputs"]
    return wall, cpu, {s: sum(r.get("timings", {}).get(s, 0.0) for r in records) for s in STAGES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or int8 (the fast paths: not exact)")
    parser.add_argument("--size", default="1920x1080", help="the clip's WIDTHxHEIGHT (px)")
    parser.add_argument("--background", choices=("noise", "smooth"), default="noise")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three; medians are printed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tree = write_standin_data_tree(tmp / "data")
        predictor = make_predictor(build_predictor(random_net("expose"), tree), args.backend, args.precision)
        clip = tmp / "clip.mp4"
        width, height = (int(v) for v in args.size.split("x"))
        write_clip(clip, args.frames, size=(width, height), background=args.background)
        model_alone(predictor, clip, args.batch, args.batch)  # warm-up
        runs: dict[str, list[float]] = {"alone": [], "plain": [], "render": [], "plain_cpu": [], "render_cpu": []}
        for r in range(args.repeats):  # interleaved, so a change in the machine's load hits all three
            runs["alone"].append(model_alone(predictor, clip, args.frames, args.batch))
            plain, plain_cpu, stages = end_to_end(predictor, clip, tmp / f"out{r}", False, args.batch)
            rendered, rendered_cpu, _ = end_to_end(predictor, clip, tmp / f"out_render{r}", True, args.batch)
            for key, value in (("plain", plain), ("render", rendered), ("plain_cpu", plain_cpu), ("render_cpu", rendered_cpu)):
                runs[key].append(value)
        alone, plain, rendered, plain_cpu, rendered_cpu = (float(np.median(v)) for v in runs.values())
    ran = runtime_info(predictor)
    print(f"{conditions(args.threads)}; {ran['backend']} {ran['precision']}; {args.frames} frames {args.size}, "
          f"1 person each, {args.background} background, batch {args.batch}, medians of {args.repeats} rounds")
    print(f"model alone {args.frames / alone:6.2f} frames/s")
    print(f"end to end  {args.frames / plain:6.2f} frames/s  ({alone / plain:.2f} of the model alone; target 0.85)")
    print(f"--render    {args.frames / rendered:6.2f} frames/s  (+{rendered / plain - 1:.0%} time; target +20%)")
    print(f"CPU seconds (this process; others' load does not count): end to end {plain_cpu:.2f}, "
          f"--render {rendered_cpu:.2f} (+{rendered_cpu / plain_cpu - 1:.0%})")
    print("stages (s, summed; they overlap): " + ", ".join(f"{s[:-2]} {v:.2f}" for s, v in stages.items()))


if __name__ == "__main__":
    main()
