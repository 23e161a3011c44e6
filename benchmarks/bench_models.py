"""Per-image forward time of the models on each path, as ratios to the plain path, in one run.

Full-size networks with stand-in weights whose BatchNorm statistics are calibrated on images
(:mod:`expose_cli.testing.calibration`), stand-in body models, batch 8, CPU with 2 threads.

- ``plain``: the same weights run the way MMHuman3D runs them: unfused BatchNorms, channels-first
  memory, ``torch.no_grad``, full SMPL-X passes for the attention keypoints;
- ``torch``: our exact torch path (BatchNorms folded, channels-last, inference mode, sparse keypoints);
- ``onnxruntime`` / ``openvino``: the same with the backbones in that runtime, fp32 (exact paths);
- ``torch-bf16`` / ``openvino-bf16``: the fast paths (backbones in bf16, the rest float32);
- ``onnxruntime-int8`` / ``openvino-int8``: the backbones quantized (``--precision int8``:
  calibrated on the fixed scenes of :mod:`expose_cli.inference.quantization`, each graph
  quantized once before timing), compared with the same runtime's fp32 path.

The machine may be shared: every repeat runs each path once, in turn (A/B/C..., interleaved). A
path's ratio is the median over repeats of that repeat's plain time over its time (calls seconds
apart), so a slow drift of the machine's speed between minutes cancels; the quartiles of those
per-repeat ratios are printed beside it. Each path's vertex deviation from
the exact path (mean / max, mm) is measured twice: on the timed batch (crops of a uniform-noise
image: a stress for int8, whose ranges were calibrated on scenes) and on 8 held-out person scenes
(:func:`expose_cli.inference.quantization.calibration_scene` with a seed the calibration does not
use); the int8 target is judged on the held-out scenes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from conditions import cpu_model  # benchmarks/conditions.py

from expose_cli.inference import quantization
from expose_cli.inference.backends import (
    RUNTIMES,
    cpu_has_bf16,
    make_predictor,
    vertex_deviation_mm,
)
from expose_cli.models import Predictor, build_predictor, collate, crop_person
from expose_cli.testing.calibration import calibrate_batchnorm
from expose_cli.testing.checkpoints import random_net
from expose_cli.testing.standins import write_standin_data_tree

#: Ratios to the plain path that the best exact (fp32) and the best fast (bf16) path must reach.
#: ``torch``: our torch path alone (fp32), what a user without the extras runs.
TARGETS = {"exact": 1.4, "fast": 2.5, "torch": 1.4}
#: What an int8 path must reach against the same runtime in fp32: (speed ratio, mean vertex deviation in mm).
INT8_TARGET = (1.5, 2.0)


def batch_for(kind: str, n: int, img_res: int):
    rng = np.random.default_rng(0)
    img = (rng.random((512, 512, 3)) * 255).astype(np.uint8)
    return collate([crop_person(img, [150, 40, 200, 420], img_res=img_res, keep_full_image=kind == "expose")
                    for _ in range(n)])


def held_out_scenes(kind: str, img_res: int, n: int = 8):
    """``n`` person scenes drawn as the int8 calibration set's, with a seed it does not use."""
    return collate([crop_person(*quantization.calibration_scene(i, seed=99), img_res=img_res,
                                keep_full_image=kind == "expose") for i in range(n)])


def plain_predictor(fast: Predictor) -> Predictor:
    """The same network and body model without our inference shortcuts."""
    plain = Predictor(fast.net, fast.body_model, fast.j14, fuse=False)
    plain.keypoint_model = None
    return plain


def available(backend: str) -> bool:
    try:
        __import__(RUNTIMES[backend].module)
        __import__("onnx")
        return True
    except ImportError:
        return False


def build_paths(base: Predictor, wanted: list[str]) -> dict:
    """name -> callable(batch) -> Prediction, for the paths this machine can run."""
    plain = plain_predictor(base)

    def run_plain(batch):
        with torch.no_grad():
            return plain.predict(batch)

    paths = {"plain": run_plain, "torch": base}
    for name in wanted:
        backend, _, precision = name.partition("-")
        if name in paths or (backend != "torch" and not available(backend)):
            continue
        if precision == "bf16" and not cpu_has_bf16():
            continue
        if precision == "int8" and backend not in paths:  # compared with its own fp32 path
            paths[backend] = make_predictor(base, backend, "fp32", threads=torch.get_num_threads())
        paths[name] = make_predictor(base, backend, precision or "fp32", threads=torch.get_num_threads())
    return paths


def bench_kind(kind: str, tree: Path, args) -> list[dict]:
    """Every path at every batch size of ``args.batch`` (``1,8``): rows of medians and ratios."""
    net = calibrate_batchnorm(random_net(kind), batches=2, batch_size=8)
    base = build_predictor(net, tree)
    paths = build_paths(base, args.paths.split(","))
    scenes = held_out_scenes(kind, base.img_res)
    ref = base(scenes)
    on_scenes = {name: vertex_deviation_mm(run(scenes), ref) for name, run in paths.items()}
    rows = [row for size in (int(b) for b in str(args.batch).split(",")) for row in bench_batch(kind, base, paths, size, args)]
    return [{**row, "scene_deviation": on_scenes[row["path"]]} for row in rows]


def bench_batch(kind: str, base: Predictor, paths: dict, size: int, args) -> list[dict]:
    batch = batch_for(kind, size, base.img_res)
    times: dict[str, list[float]] = {name: [] for name in paths}
    preds = {name: run(batch) for name, run in paths.items()}  # warm-up, and the outputs compared
    for _ in range(args.repeats):
        for name, run in paths.items():  # interleaved: one call of each path per repeat
            t0 = time.perf_counter()
            run(batch)
            times[name].append((time.perf_counter() - t0) / size)
    rows = []
    for name in paths:
        ratios = [p / t for p, t in zip(times["plain"], times[name], strict=True)]
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        dev = vertex_deviation_mm(preds[name], preds["torch"])
        rows.append({"model": kind, "batch": size, "path": name, "s_per_image": statistics.median(times[name]),
                     "ratio": statistics.median(ratios), "ratio_quartiles": (quartiles[0], quartiles[2]),
                     "deviation": dev, "spread": (min(times[name]), max(times[name]))})
    return rows


def report(kind: str, rows: list[dict]) -> list[str]:
    """Print the rows of one model and batch size and how they stand against :data:`TARGETS`;
    returns what is below target."""
    failed, size = [], rows[0]["batch"]
    for row in rows:
        dev, scene = row["deviation"], row["scene_deviation"]
        print(f"{kind:7s} {size:5d} {row['path']:16s} {row['s_per_image']:8.3f} {row['ratio']:7.2f}x "
              f"{dev['mean_mm']:9.4f} / {dev['max_mm']:<8.4f} {scene['mean_mm']:9.4f} / {scene['max_mm']:<8.4f} "
              f"{row['spread'][0]:.3f}-{row['spread'][1]:.3f}   {row['ratio_quartiles'][0]:.2f}-{row['ratio_quartiles'][1]:.2f}",
              flush=True)
    for path_kind, target in TARGETS.items():
        group = ([r for r in rows if r["path"] == "torch"] if path_kind == "torch" else
                 [r for r in rows if r["path"].endswith("-bf16")] if path_kind == "fast" else
                 [r for r in rows if r["path"] != "plain" and "-" not in r["path"]])
        if not group:
            continue
        best = max(group, key=lambda r: r["ratio"])
        ok = best["ratio"] >= target
        failed += [] if ok else [f"{kind} batch {size} {path_kind}"]
        print(f"{kind:7s} {size:5d} {path_kind} path = {best['path']}: {best['ratio']:.2f}x plain "
              f"(target {target:.1f}x) {'ok' if ok else 'BELOW TARGET'}", flush=True)
    return failed + report_int8(kind, rows)


def report_int8(kind: str, rows: list[dict]) -> list[str]:
    """Each int8 path against its runtime's fp32 path (:data:`INT8_TARGET`); returns what misses it."""
    failed, by_path = [], {r["path"]: r for r in rows}
    for name, row in by_path.items():
        fp32 = by_path.get(name.removesuffix("-int8")) if name.endswith("-int8") else None
        if fp32 is None:
            continue
        ratio, mean_mm = fp32["s_per_image"] / row["s_per_image"], row["scene_deviation"]["mean_mm"]
        ok = ratio >= INT8_TARGET[0] and mean_mm < INT8_TARGET[1]
        failed += [] if ok else [f"{kind} batch {row['batch']} {name}"]
        print(f"{kind:7s} {row['batch']:5d} int8 path = {name}: {ratio:.2f}x {fp32['path']} fp32, {mean_mm:.2f} mm mean "
              f"on held-out scenes (target {INT8_TARGET[0]:.1f}x, < {INT8_TARGET[1]:.0f} mm) {'ok' if ok else 'BELOW TARGET'}; "
              f"{row['deviation']['mean_mm']:.2f} mm on the noise crop", flush=True)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="body,expose", help="comma-separated: body, hand, face, expose")
    parser.add_argument("--paths", default="torch,onnxruntime,openvino,torch-bf16,openvino-bf16,onnxruntime-int8,openvino-int8")
    parser.add_argument("--batch", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; CPU {cpu_model()} ({torch.get_num_threads()} threads, "
          f"native bf16: {cpu_has_bf16()}); torch {torch.__version__}; batch sizes {args.batch}; "
          f"median of {args.repeats} interleaved repeats")
    print(f"{'model':7s} {'batch':>5s} {'path':16s} {'s/image':>8s} {'x plain':>8s} {'noise crop vs torch, mm':>21s}"
          f" {'held-out scenes, mm':>20s}  {'min-max s/image':>16s}  {'x plain IQR':>11s}")
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_standin_data_tree(Path(tmp))
        for kind in args.kinds.split(","):
            rows = bench_kind(kind, tree, args)
            for size in sorted({r["batch"] for r in rows}):
                failed += report(kind, [r for r in rows if r["batch"] == size])
    if failed:
        print("below target: " + ", ".join(failed))

if __name__ == "__main__":
    main()
