"""A one-image ``expose infer`` call, whole process (start, load, export or cache, forward, write),
on each runtime: does a cached graph cost no more than the torch path?

Full-size full model (stand-in weights, stand-in body models in a temporary data tree), one
1280x720 JPEG, one person from a boxes file, ``--format npz``, CPU with 2 threads. Paths:

- ``torch``: ``--backend torch``;
- ``auto (cached)``: ``--backend auto`` (OpenVINO when installed) with the graphs already in
  ``<data>/cache/onnx`` (one untimed call fills it);
- ``auto (no cache)``: the same with the cache folder deleted before each call (an export each time).

Each repeat runs every path once, in turn (interleaved), and the medians of the wall times are
compared, so a change of load on a shared machine hits every path alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from conditions import conditions  # benchmarks/conditions.py

from expose_cli.io.paths import DataTree
from expose_cli.testing.checkpoints import write_mmhuman3d_checkpoint
from expose_cli.testing.standins import write_standin_data_tree

BOX = [500, 100, 760, 700]


def setup(root: Path) -> tuple[Path, Path, Path]:
    """Data tree with a full-size ``expose.pth``, one image, its boxes file."""
    tree = write_standin_data_tree(root / "data")
    write_mmhuman3d_checkpoint(DataTree(tree.root).checkpoint("expose"), "expose", seed=0)
    image = root / "one.jpg"
    cv2.imwrite(str(image), (np.random.default_rng(0).random((720, 1280, 3)) * 255).astype(np.uint8))
    boxes = root / "boxes.json"
    boxes.write_text(json.dumps({"one.jpg": [BOX]}))
    return Path(tree.root), image, boxes


def call(data: Path, image: Path, boxes: Path, out: Path, backend: str, threads: int) -> tuple[float, str]:
    """Wall seconds of one ``expose infer`` process, and the runtime its summary names."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "expose_cli", "--data-dir", str(data), "--device", "cpu", "-q", "infer", str(image),
           "--boxes", str(boxes), "--out", str(out), "--format", "npz", "--backend", backend]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    runtime = json.loads((out / "summary.json").read_text()).get("runtime", {})
    return wall, f"{runtime.get('backend')} {runtime.get('precision')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, image, boxes = setup(Path(tmp))
        cache = data / "cache"
        call(data, image, boxes, Path(tmp) / "warm", "auto", args.threads)  # fills the cache
        paths = {"torch": "torch", "auto (cached)": "auto", "auto (no cache)": "auto"}
        times: dict[str, list[float]] = {name: [] for name in paths}
        ran: dict[str, str] = {}
        for i in range(args.repeats):
            for j, (name, backend) in enumerate(paths.items()):
                if name == "auto (no cache)":
                    shutil.rmtree(cache, ignore_errors=True)
                wall, ran[name] = call(data, image, boxes, Path(tmp) / f"out{i}-{j}", backend, args.threads)
                times[name].append(wall)
    print(f"{conditions(args.threads)}; one 1280x720 image, one person, full model, median of "
          f"{args.repeats} interleaved whole-process calls")
    torch_s = statistics.median(times["torch"])
    for name in paths:
        median = statistics.median(times[name])
        print(f"{name:16s} {ran[name]:18s} {median:7.2f} s  ({median / torch_s:.2f}x torch's time; "
              f"min-max {min(times[name]):.2f}-{max(times[name]):.2f} s)")


if __name__ == "__main__":
    main()
