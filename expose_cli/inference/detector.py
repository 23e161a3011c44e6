"""A person detector in ONNX, run by ONNX Runtime: letterbox -> network -> threshold, NMS, rescale.

The default model is OpenMMLab's RTMDet-nano person detector as exported by MMDeploy
(``end2end.onnx`` of ``rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.zip``, fetched by
``expose fetch detector``). Any model with the same signature works (``--detector onnx:PATH``):

- input: one float32 tensor ``[N, 3, H, W]`` (``H``, ``W`` fixed in the graph, or free: then
  640 x 640 is used), BGR channels, each ``(pixel - mean) / std`` with MMDetection's
  ``mean = (103.53, 116.28, 123.675)`` and ``std = (57.375, 57.12, 58.395)``; the image is
  resized to fit (aspect kept) into the top-left corner of a canvas filled with grey 114;
- outputs: ``dets [N, K, 5]`` (``x1, y1, x2, y2`` in input pixels, score) and, optionally,
  ``labels [N, K]`` (class ids; persons are 0). Only persons are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from expose_cli.errors import ExposeError, option
from expose_cli.inference.boxes import nms

#: MMDetection's BGR normalisation for RTMDet / YOLOX-style detectors.
BGR_MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32)
BGR_STD = np.array([57.375, 57.12, 58.395], dtype=np.float32)
PAD_VALUE = 114
DEFAULT_INPUT_SIZE = (640, 640)  # height, width, when the graph leaves them free
ONNX_INSTALL = "pip install 'expose-cli[onnx]'  (or: pip install onnxruntime)"


def letterbox(image_rgb: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Resize ``image_rgb`` (H x W x 3, uint8) to fit ``size`` (height, width) with its aspect kept,
    into the top-left corner of a grey (114) canvas. Returns the BGR canvas and the ratio
    (canvas px per image px)."""
    h, w = image_rgb.shape[:2]
    ratio = min(size[0] / h, size[1] / w)
    new_w, new_h = max(1, int(w * ratio)), max(1, int(h * ratio))
    canvas = np.full((size[0], size[1], 3), PAD_VALUE, dtype=np.uint8)
    resized = cv2.resize(image_rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas[:new_h, :new_w] = resized[:, :, ::-1]  # RGB -> BGR
    return canvas, ratio


def to_input_tensor(canvas_bgr: np.ndarray) -> np.ndarray:
    """``[1, 3, H, W]`` float32, normalised with :data:`BGR_MEAN` / :data:`BGR_STD`."""
    x = (canvas_bgr.astype(np.float32) - BGR_MEAN) / BGR_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def postprocess(dets: np.ndarray, labels: np.ndarray | None, ratio: float, image_size: tuple[int, int],
                score_threshold: float, nms_iou: float) -> list[list[float]]:
    """Person boxes ``[x1, y1, x2, y2, score]`` in original-image pixels.

    ``dets`` is ``[K, 5]`` in network-input pixels; rows below ``score_threshold`` or of another
    class than 0 are dropped, the rest go through class-agnostic NMS at ``nms_iou``, are divided by
    ``ratio`` and clipped to ``image_size`` (height, width).
    """
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, 5)
    keep = np.isfinite(dets).all(1) & (dets[:, 4] >= score_threshold)
    if labels is not None:
        keep &= np.asarray(labels).reshape(-1) == 0
    boxes = dets[keep].copy()
    boxes[:, :4] /= ratio
    h, w = image_size
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    return nms([[float(v) for v in b] for b in boxes], nms_iou)


@dataclass
class OnnxPersonDetector:
    """An ONNX person detector (see the module docstring for the signature it expects)."""

    path: Path
    session: object
    input_name: str
    input_size: tuple[int, int]
    score_threshold: float = 0.3
    nms_iou: float = 0.45

    def __call__(self, image_rgb: np.ndarray) -> list[list[float]]:
        """Person boxes ``[x1, y1, x2, y2, score]`` (px) in ``image_rgb`` (H x W x 3, uint8)."""
        canvas, ratio = letterbox(image_rgb, self.input_size)
        outputs = self.session.run(None, {self.input_name: to_input_tensor(canvas)})
        labels = outputs[1][0] if len(outputs) > 1 else None
        return postprocess(outputs[0][0], labels, ratio, image_rgb.shape[:2], self.score_threshold, self.nms_iou)


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise ExposeError("the ONNX person detector needs ONNX Runtime, which is not installed",
                          hint=ONNX_INSTALL) from exc
    return onnxruntime


def load_onnx_detector(path: str | Path, score_threshold: float = 0.3, nms_iou: float = 0.45,
                       providers: list[str] | None = None) -> OnnxPersonDetector:
    """Open ``path`` with ONNX Runtime and check its signature; one-line errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ExposeError("detector file not found", hint="run `expose fetch detector`", path=path)
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for every kind of bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExposeError(f"not a usable ONNX model ({first[:200]})",
                          hint="give an ONNX person detector, or run `expose fetch detector`", path=path) from exc
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise ExposeError(f"a person detector takes one [N, 3, H, W] image; this model takes "
                          f"{[(i.name, i.shape) for i in inputs]}", path=path)
    dets_shape = outputs[0].shape
    if len(dets_shape) != 3 or dets_shape[-1] != 5:
        raise ExposeError(f"expected a first output dets [N, K, 5] (x1, y1, x2, y2, score); got "
                          f"{outputs[0].name} {dets_shape}", path=path)
    return OnnxPersonDetector(path, session, inputs[0].name, _input_size(inputs[0].shape), score_threshold, nms_iou)


def _input_size(shape) -> tuple[int, int]:
    h, w = shape[2], shape[3]
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        return h, w
    return DEFAULT_INPUT_SIZE


DETECTORS = ("auto", "hog", "full-image", "onnx:PATH")


def resolve_detector(spec: str, default_onnx: Path) -> tuple[str, OnnxPersonDetector | None, str | None]:
    """``--detector`` -> (kind, ONNX detector or ``None``, a one-line warning or ``None``).

    ``auto``: the ONNX detector at ``default_onnx`` when it is there and ONNX Runtime is installed,
    else OpenCV's HOG with a warning that says how to get the real one. ``onnx:PATH``: that model
    (a bad file is an error). ``hog``, ``full-image``: as named.
    """
    if spec in ("hog", "full-image"):
        return spec, None, None
    if spec.startswith("onnx:"):
        return "onnx", load_onnx_detector(spec[5:]), None
    if spec != "auto":
        raise ExposeError(f"unknown {option('detector')} {spec!r}", hint="use auto, hog, full-image or onnx:PATH")
    if not Path(default_onnx).is_file():
        return "hog", None, (f"no person detector at {default_onnx}: using OpenCV's HOG, which misses and invents "
                             "people; `expose fetch detector` installs a real one")
    try:
        return "onnx", load_onnx_detector(default_onnx), None
    except ExposeError as exc:
        if exc.hint == ONNX_INSTALL:
            return "hog", None, f"{exc.reason}: using OpenCV's HOG instead ({ONNX_INSTALL})"
        raise
