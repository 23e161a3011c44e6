"""A whole-body 2D keypoint network in ONNX (RTMW / DWPose signature), run by ONNX Runtime.

The default model is OpenMMLab's RTMW-l (``rtmw-dw-x-l_simcc-cocktail14_270e-384x288``) as MMPose
publishes it for its ONNX SDK (``end2end.onnx`` in the archive; ``expose fetch keypoints``) and as
rtmlib's ``Wholebody`` "performance" mode uses it. Any model with the same signature works
(``--keypoints onnx:PATH``), e.g. RTMW-m/-l at 256 x 192 or DWPose:

- input: one float32 tensor ``[N, 3, H, W]`` with ``H``, ``W`` fixed in the graph (384 x 288 or
  256 x 192), a person crop in RGB, each channel ``(pixel - mean) / std`` with MMPose's
  ``mean = (123.675, 116.28, 103.53)``, ``std = (58.395, 57.12, 57.375)``;
- the crop: the person box (``x1, y1, x2, y2``, px) scaled by 1.25 about its centre, widened or
  heightened to the input's aspect ratio, mapped onto the input by a scale-and-shift affine
  (bilinear, black outside the image);
- outputs: ``simcc_x [N, K, W * r]`` and ``simcc_y [N, K, H * r]`` (SimCC, split ratio ``r``,
  2.0 for RTMW / DWPose; here read off the shapes), ``K = 133`` (COCO-WholeBody). A keypoint is at
  the arg-max bin / ``r`` (input px), mapped back through the inverse affine; its confidence is the
  smaller of the two maxima (MMPose's ``get_simcc_maximum``; rtmlib's current version takes their
  mean), 0 when that is not positive.

rtmlib normalises the BGR frame that OpenCV reads with the same numbers; MMPose, which trained
these models, converts to RGB first (``bgr_to_rgb=True``): we follow MMPose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from expose_cli.body_models.keypoint_files import write_keypoints_json
from expose_cli.errors import ExposeError, option

#: MMPose's RGB normalisation of RTMPose / RTMW / DWPose inputs (pixels, 0-255).
RGB_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
RGB_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
_RGB_INV_STD = (1.0 / RGB_STD).astype(np.float32)
BOX_PADDING = 1.25
SIMCC_SPLIT_RATIO = 2.0  # used when the graph leaves the SimCC lengths free
NUM_KEYPOINTS = 133  # COCO-WholeBody
ONNX_INSTALL = "pip install 'expose-cli[onnx]'  (or: pip install onnxruntime)"
FETCH_HINT = f"run `expose fetch keypoints`, or give {option('keypoints')} onnx:PATH"


@dataclass(frozen=True)
class CropTransform:
    """The person crop: input px = ``scale * image px + shift`` (per axis, one common ``scale``).

    ``center`` (x, y) and ``size`` (w, h) are the padded, aspect-fixed box in image pixels.
    """

    center: np.ndarray
    size: np.ndarray
    input_size: tuple[int, int]  # height, width

    @property
    def scale(self) -> float:
        return self.input_size[1] / float(self.size[0])

    def matrix(self) -> np.ndarray:
        """2 x 3 affine image -> input (for ``cv2.warpAffine``)."""
        s, (h, w) = self.scale, self.input_size
        return np.array([[s, 0.0, w / 2 - s * self.center[0]], [0.0, s, h / 2 - s * self.center[1]]])

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Input px ``[..., 2]`` -> image px (the inverse affine)."""
        h, w = self.input_size
        return (xy - np.array([w / 2, h / 2])) / self.scale + self.center


def crop_transform(box, input_size: tuple[int, int], padding: float = BOX_PADDING) -> CropTransform:
    """The crop of ``box`` (``x1, y1, x2, y2``, px) for an input of ``input_size`` (height, width):
    centre kept, size times ``padding``, then the short side grown to the input's aspect ratio."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    if not (np.isfinite([x1, y1, x2, y2]).all() and x2 > x1 and y2 > y1):
        raise ValueError(f"box {[x1, y1, x2, y2]} is empty or not finite")
    center = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    bw, bh = (x2 - x1) * padding, (y2 - y1) * padding
    aspect = input_size[1] / input_size[0]  # width / height
    size = np.array([bw, bw / aspect]) if bw > bh * aspect else np.array([bh * aspect, bh])
    return CropTransform(center, size, input_size)


def crop_input(image_rgb: np.ndarray, transform: CropTransform, out: np.ndarray | None = None) -> np.ndarray:
    """``[3, H, W]`` float32: the crop of ``image_rgb`` (H x W x 3, uint8), normalised; written
    into ``out`` when given (a ``[3, H, W]`` float32 slice of the batch)."""
    h, w = transform.input_size
    crop = cv2.warpAffine(image_rgb, transform.matrix(), (w, h), flags=cv2.INTER_LINEAR)
    out = np.empty((3, h, w), dtype=np.float32) if out is None else out
    for c in range(3):  # channel by channel, in place: a few times faster than broadcasting + transposing
        np.subtract(crop[..., c], RGB_MEAN[c], out=out[c], dtype=np.float32)
        out[c] *= _RGB_INV_STD[c]
    return out


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float) -> np.ndarray:
    """``[N, K, 3]``: (x, y) in input px at the arg-max bins / ``split_ratio``, and the confidence
    ``min(max simcc_x, max simcc_y)``, clipped at 0 (a keypoint with confidence 0 is not seen)."""
    x = np.argmax(simcc_x, axis=-1) / split_ratio
    y = np.argmax(simcc_y, axis=-1) / split_ratio
    conf = np.minimum(simcc_x.max(axis=-1), simcc_y.max(axis=-1)).clip(min=0.0)
    return np.stack([x, y, conf], axis=-1).astype(np.float64)


@dataclass
class OnnxKeypointNet:
    """An ONNX whole-body keypoint network (see the module docstring for the signature)."""

    path: Path
    session: object
    input_name: str
    input_size: tuple[int, int]  # height, width
    output_names: tuple[str, str]  # simcc_x, simcc_y
    split_ratio: float = SIMCC_SPLIT_RATIO
    batch: int | None = None  # persons per run: fixed by the graph, or None (all at once)

    def __call__(self, image_rgb: np.ndarray, boxes) -> np.ndarray:
        """COCO-WholeBody keypoints ``[P, 133, 3]`` (x, y in image px; confidence) of the persons in
        ``boxes`` (``[P, >=4]``, ``x1, y1, x2, y2`` in px) of ``image_rgb`` (H x W x 3, uint8)."""
        transforms = [crop_transform(b, self.input_size) for b in boxes]
        if not transforms:
            return np.zeros((0, NUM_KEYPOINTS, 3))
        crops = np.empty((len(transforms), 3, *self.input_size), dtype=np.float32)
        for p, t in enumerate(transforms):
            crop_input(image_rgb, t, crops[p])
        step = self.batch or len(crops)
        decoded = []
        for start in range(0, len(crops), step):
            sx, sy = self.session.run(list(self.output_names), {self.input_name: crops[start:start + step]})
            decoded.append(decode_simcc(np.asarray(sx), np.asarray(sy), self.split_ratio))
        kps = np.concatenate(decoded)
        for p, t in enumerate(transforms):
            kps[p, :, :2] = t.to_image(kps[p, :, :2])
        return kps


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise ExposeError("the keypoint network needs ONNX Runtime, which is not installed",
                          hint=ONNX_INSTALL, exit_code=2) from exc
    return onnxruntime


def _open_session(path: Path, providers: list[str] | None):
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for every kind of bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExposeError(f"not a usable ONNX model ({first[:200]})",
                          hint="give an RTMW / DWPose whole-body ONNX model, or " + FETCH_HINT, path=path, exit_code=2) from exc


def load_keypoint_net(path: str | Path, providers: list[str] | None = None) -> OnnxKeypointNet:
    """Open ``path`` with ONNX Runtime and check its signature; one-line errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ExposeError("keypoint model not found", hint=FETCH_HINT, path=path, exit_code=2)
    session = _open_session(path, providers)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = inputs[0].shape if len(inputs) == 1 else []
    if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[2:]):
        raise ExposeError(f"a keypoint network takes one [N, 3, H, W] crop with H and W fixed; this model takes "
                          f"{[(i.name, i.shape) for i in inputs]}", path=path, exit_code=2)
    names = [o.name for o in outputs]
    pick = ("simcc_x", "simcc_y") if {"simcc_x", "simcc_y"} <= set(names) else tuple(names[:2])
    shapes = {o.name: o.shape for o in outputs}
    if len(outputs) < 2 or any(len(shapes[n]) != 3 for n in pick):
        raise ExposeError(f"expected SimCC outputs simcc_x [N, K, Wx], simcc_y [N, K, Wy]; got {shapes}", path=path, exit_code=2)
    k = shapes[pick[0]][1]
    if isinstance(k, int) and k != NUM_KEYPOINTS:
        raise ExposeError(f"this model gives {k} keypoints; `expose` reads COCO-WholeBody's {NUM_KEYPOINTS}",
                          hint="give a whole-body model (RTMW, DWPose)", path=path, exit_code=2)
    size = (shape[2], shape[3])
    ratio = _split_ratio(shapes[pick[0]][2], shapes[pick[1]][2], size, path)
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return OnnxKeypointNet(path, session, inputs[0].name, size, pick, ratio, batch)


def _split_ratio(wx, wy, size: tuple[int, int], path: Path) -> float:
    """The SimCC split ratio from the output lengths (``Wx / W`` = ``Wy / H``), when the graph fixes them."""
    if not (isinstance(wx, int) and isinstance(wy, int)):
        return SIMCC_SPLIT_RATIO
    rx, ry = wx / size[1], wy / size[0]
    if abs(rx - ry) > 1e-6 or rx <= 0:
        raise ExposeError(f"SimCC lengths {wx} x {wy} do not match the input {size[1]} x {size[0]} with one split "
                          "ratio", path=path, exit_code=2)
    return rx


def providers_for(device) -> list:
    """ONNX Runtime providers for a device (``cpu``, ``cuda``, ``cuda:N``, or a ``torch.device``):
    that GPU first when the installed ONNX Runtime has CUDA (``onnxruntime-gpu``), then the CPU."""
    name = str(device)
    if name.startswith("cuda") and "CUDAExecutionProvider" in _import_onnxruntime().get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": int(name.split(":")[1]) if ":" in name else 0}),
                "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def resolve_keypoint_net(spec: str, default_onnx: Path, device="cpu") -> OnnxKeypointNet:
    """``--keypoints`` -> the network on ``device`` (:func:`providers_for`): ``auto`` is the one
    ``expose fetch keypoints`` installs at ``default_onnx``; ``onnx:PATH`` any model of the same
    signature."""
    if spec.startswith("onnx:"):
        return load_keypoint_net(spec[5:], providers_for(device))
    if spec != "auto":
        raise ExposeError(f"unknown {option('keypoints')} {spec!r}", hint="use auto or onnx:PATH", exit_code=2)
    if not Path(default_onnx).is_file():
        raise ExposeError("no keypoint model installed", hint=FETCH_HINT, path=default_onnx, exit_code=2)
    return load_keypoint_net(default_onnx, providers_for(device))


def save_keypoints(path: str | Path, network, image_rgb: np.ndarray, boxes, *, image: str,
                   frame: int | None = None) -> Path:
    """Run ``network`` (boxes -> ``[P, 133, 3]``) on ``boxes`` of ``image_rgb`` and write the result
    to ``path`` as an ``expose-keypoints`` JSON file (docs/keypoints.md); returns ``path``."""
    points = network(image_rgb, boxes)
    return write_keypoints_json(path, points, image=image, image_size=image_rgb.shape[:2], frame=frame,
                                boxes=boxes, model=Path(getattr(network, "path", "")).name)
