"""Video extras of `expose infer`: person detection, tracking, smoothing and motion export per frame.

The detector is the fetched RTMDet-nano (``data/detectors/rtmdet_nano_person.onnx``, or the path
given as the first argument) when present. Without it, a stand-in network of the same input size
and about the same cost (depthwise-separable convolutions, ~0.3 G multiply-adds at 320 x 320 by
torch's flop counter; RTMDet-nano is published at 0.31 GFLOPs, counted as multiply-adds) with random weights is exported and
timed instead: the printed line says which. Letterbox, normalisation, ONNX Runtime and
post-processing are timed together on 1280 x 720 frames, with 2 threads.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from conditions import conditions  # benchmarks/conditions.py
from torch import nn

from expose_cli.inference.detector import load_onnx_detector
from expose_cli.inference.motion import full_pose, write_amass_npz, write_bvh
from expose_cli.inference.smoothing import smooth_track
from expose_cli.inference.tracking import IouTracker
from expose_cli.io.paths import DataTree


class StandInDetector(nn.Module):
    """~0.3 G multiply-adds at 320 x 320, outputs ``dets [N, 100, 5]`` and ``labels [N, 100]``."""

    def __init__(self) -> None:
        super().__init__()
        layers, ch = [nn.Conv2d(3, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.SiLU()], 32
        for out, stride, repeat in ((64, 2, 3), (128, 2, 4), (256, 2, 4), (512, 2, 2)):
            for r in range(repeat):
                s = stride if r == 0 else 1
                layers += [nn.Conv2d(ch, ch, 3, s, 1, groups=ch), nn.BatchNorm2d(ch), nn.SiLU(),
                           nn.Conv2d(ch, out, 1), nn.BatchNorm2d(out), nn.SiLU()]
                ch = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(ch, 5, 1)

    def forward(self, x):
        y = self.head(self.body(x)).flatten(2).transpose(1, 2)[:, :100]
        dets = torch.cat([y[..., :4].abs() * 32, y[..., 4:].sigmoid()], dim=-1)
        return dets, torch.zeros(dets.shape[:2], dtype=torch.int64)


def gflop(model: nn.Module, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 2e9  # multiply-adds


def detector_path(tmp: Path) -> tuple[Path, str]:
    given = Path(sys.argv[1]) if len(sys.argv) > 1 else DataTree().person_detector
    if given.is_file():
        return given, f"RTMDet-nano person ({given})"
    model = StandInDetector().eval()
    path = tmp / "standin.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 320, 320),), str(path), input_names=["input"],
                      output_names=["dets", "labels"], dynamo=False)
    return path, f"stand-in of RTMDet-nano's cost ({gflop(model, 320):.2f} G multiply-adds at 320x320, random weights)"


def time_detector(path: Path, frames: list[np.ndarray]) -> float:
    import onnxruntime as ort

    detector = load_onnx_detector(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    detector.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    detector(frames[0])
    t0 = time.perf_counter()
    for f in frames:
        detector(f)
    return (time.perf_counter() - t0) / len(frames)


def time_tracks(frames: int = 300, people: int = 3) -> tuple[float, float, float]:
    """Tracking per frame, smoothing and motion writing per track of ``frames`` frames (seconds)."""
    rng = np.random.default_rng(0)
    tracker = IouTracker()
    t0 = time.perf_counter()
    for t in range(frames):
        boxes = [[100 + 300 * p + 2 * t, 100, 300 + 300 * p + 2 * t, 600, 0.9] for p in range(people)]
        tracker.update(t, [b for b in rng.permutation(boxes).tolist()])
    track_s = (time.perf_counter() - t0) / frames
    params = {"global_orient": rng.normal(0, 1, (frames, 1, 3)), "body_pose": rng.normal(0, 0.3, (frames, 21, 3)),
              "left_hand_pose": rng.normal(0, 0.3, (frames, 15, 3)), "right_hand_pose": rng.normal(0, 0.3, (frames, 15, 3)),
              "jaw_pose": rng.normal(0, 0.1, (frames, 1, 3)), "betas": rng.normal(0, 1, (frames, 10)),
              "camera_translation": rng.normal(0, 1, (frames, 3))}
    keys = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose")
    t0 = time.perf_counter()
    smoothed = smooth_track(params, "savgol", 30.0, keys)
    smooth_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pose = full_pose(smoothed, frames)
        write_amass_npz(Path(tmp) / "m.npz", pose, smoothed["camera_translation"], smoothed["betas"][0], 30.0)
        parents = np.r_[-1, np.arange(54)]
        write_bvh(Path(tmp) / "m.bvh", pose, smoothed["camera_translation"], rng.normal(0, 0.2, (55, 3)), parents,
                  [f"j{i}" for i in range(55)], 30.0)
        write_s = time.perf_counter() - t0
    return track_s, smooth_s, write_s


def main() -> None:
    torch.set_num_threads(2)
    print(conditions(2))
    rng = np.random.default_rng(0)
    frames = [(rng.random((720, 1280, 3)) * 255).astype(np.uint8) for _ in range(20)]
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("detector: not measured (pip install 'expose-cli[onnx]')")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path, what = detector_path(Path(tmp))
            ms = time_detector(path, frames) * 1000
            print(f"detector, 1280x720 frame: {ms:.1f} ms/frame ({what}; letterbox + ONNX Runtime + NMS)")
    track_s, smooth_s, write_s = time_tracks()
    print(f"tracking, 3 persons: {track_s * 1e3:.3f} ms/frame; Savitzky-Golay of one 300-frame track: "
          f"{smooth_s * 1e3:.1f} ms; motion.npz + motion.bvh of it: {write_s * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
