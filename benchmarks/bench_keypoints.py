"""The whole-body keypoint runner of `expose infer --save-keypoints` (inference/keypoints_net.py).

Times, per person on a 1280 x 720 frame at RTMW-l's 384 x 288 input, 2 threads:

- the runner's own work (crop by affine warp, normalisation, SimCC decoding, inverse affine), with
  a network that costs nothing (its SimCC outputs are constants), so the figure is the runner alone;
- the fetched RTMW-l (``data/keypoint_models/rtmw-l_wholebody_384x288.onnx``, or the ONNX path given
  as the first argument) when present; else that line says "not measured". No stand-in of the
  network is timed: we know no published operation count of this export to match one to.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from conditions import conditions  # benchmarks/conditions.py

from expose_cli.inference.keypoints_net import load_keypoint_net
from expose_cli.io.paths import DataTree

H, W, K = 384, 288, 133


class ConstantSimCC(torch.nn.Module):
    def forward(self, x):
        n = x.shape[0]
        zero = 0 * x[:, :1, :1, :1].reshape(n, 1, 1)
        return torch.ones(1, K, 2 * W).expand(n, K, 2 * W) + zero, torch.ones(1, K, 2 * H).expand(n, K, 2 * H) + zero


def _per_person_ms(net, image: np.ndarray, boxes: list, repeats: int) -> float:
    net(image, boxes)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        net(image, boxes)
    return (time.perf_counter() - t0) / repeats / len(boxes) * 1e3


def main() -> None:
    torch.set_num_threads(2)
    print(conditions(2))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    boxes = [[100, 80, 400, 700, 0.9], [500, 60, 760, 690, 0.8], [900, 100, 1180, 710, 0.7]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "constant.onnx"
        torch.onnx.export(ConstantSimCC(), (torch.zeros(1, 3, H, W),), str(path), input_names=["input"],
                          output_names=["simcc_x", "simcc_y"], dynamic_axes={"input": {0: "n"}}, opset_version=17,
                          dynamo=False)
        ms = _per_person_ms(load_keypoint_net(path), image, boxes, 50)
    print(f"keypoint runner alone (crop, normalise, decode; 3 persons per frame): {ms:.2f} ms/person")
    real = Path(sys.argv[1]) if len(sys.argv) > 1 else DataTree(Path("data")).keypoint_model
    if not real.is_file():
        print(f"keypoint network: not measured (no {real}; `expose fetch keypoints`)")
        return
    ms = _per_person_ms(load_keypoint_net(real), image, boxes, 5)
    print(f"keypoint network {real.name}, runner included: {ms:.1f} ms/person")


if __name__ == "__main__":
    main()
