"""What one `expose infer` run is asked to do: :class:`InferOptions`, read by every stage of the
pipeline (:mod:`expose_cli.inference.pipeline`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from expose_cli.inference.loading import CropSpec
from expose_cli.inference.video import TrackOptions
from expose_cli.utils.shard import Shard


@dataclass
class InferOptions:
    """One run's choices. Precision is the predictor's (``backends.make_predictor``), not an option here."""

    out_dir: Path
    formats: tuple[str, ...] = ("obj", "npz")  # names of export.FORMATS
    camera_space: bool = False
    focal_length: float = 5000.0  # px
    render: bool = False
    views: tuple[float, ...] = ()  # --render: degrees about each person's vertical axis, panels beside the overlay
    # how persons are found and cropped (built by the caller for its predictor: loading.crop_spec);
    # None: the predictor's crop, persons found by OpenCV's HOG
    crop: CropSpec | None = None
    boxes: dict | None = None  # the boxes file's table (boxes.load_boxes); inputs it lacks use crop.detector
    detect: Callable[[np.ndarray], list[list[float]]] | None = None  # crop.detector "onnx": boxes of an RGB image (px)
    batch_size: int = 8
    skip_existing: bool = False
    every: int = 1
    max_frames: int | None = None
    tracks: TrackOptions | None = None  # videos: track ids, smoothing, motion files
    track_images: bool = False  # also track each input folder's images as one sequence
    sequence_fps: float = 30.0  # frame rate of such image sequences
    shard: Shard = field(default_factory=Shard)  # this process takes inputs rank, rank + world_size, ...
    # processes decoding, detecting and cropping ahead of the model (0: a thread; None:
    # loading.workers_for, half the CPUs or 0 for images that fit in one batch). They are started by
    # multiprocessing: a script calling run_inference with workers needs ``if __name__ == "__main__":``
    workers: int | None = 0
    write_threads: int = 2  # threads writing person files (0: written by the model's thread)
    keypoints: Callable[[np.ndarray, list], np.ndarray] | None = None  # --save-keypoints: boxes -> [P, 133, 3]
