"""Person boxes: from a JSON file, OpenCV's HOG people detector, or the whole image."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from expose_cli.errors import ExposeError

#: An input's error when no box is left (none detected, none in the boxes file, all filtered out);
#: not a failure: the run's exit status and ``failed`` count leave it out.
NO_PERSON = "no person found"


def load_boxes(path: str | Path) -> dict[str, list[list[float]]]:
    """Boxes per input file, as ``[x1, y1, x2, y2, score]`` (px).

    Accepted: ``{"img.jpg": [[x1, y1, x2, y2], [x1, y1, x2, y2, score], ...]}`` (the key a file name,
    stem, or a path relative to the input folder or the working directory; an empty list means "no
    person": the detector is not run), or a COCO detection-results list ``[{"image_id": ...,
    "bbox": [x, y, w, h], "score": s, "category_id": 1}]`` where ``image_id`` is a file name or stem,
    or the integer in the file name (as a number or a string).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ExposeError(f"cannot read boxes JSON: {exc}", path=path) from exc
    out: dict[str, list[list[float]]] = {}
    if isinstance(data, dict):
        for name, boxes in data.items():
            if not isinstance(boxes, list):
                raise ExposeError(f"boxes of {name!r} must be a list of [x1, y1, x2, y2(, score)]", path=path)
            out.setdefault(name, [])  # an empty list is an answer: no person in this input
            for b in boxes:
                if not isinstance(b, list) or len(b) not in (4, 5) or not all(_is_number(v) for v in b):
                    raise ExposeError(f"bad box {b!r} for {name!r}: expected [x1, y1, x2, y2] or [..., score]", path=path)
                out.setdefault(name, []).append([float(v) for v in b[:4]] + [float(b[4]) if len(b) == 5 else 1.0])
    elif isinstance(data, list):
        for det in data:
            if not isinstance(det, dict) or "bbox" not in det or "image_id" not in det:
                raise ExposeError("COCO results entries need 'image_id' and 'bbox'", path=path)
            if det.get("category_id", 1) != 1:
                continue
            bbox = det["bbox"]
            if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
                raise ExposeError(f"bad COCO bbox {bbox!r}: expected [x, y, w, h]", path=path)
            x, y, w, h = (float(v) for v in bbox)
            key = str(det["image_id"]).strip()
            if key.isdigit():  # 42, "42" and "000042" are the same COCO id
                key = str(int(key))
            out.setdefault(key, []).append([x, y, x + w, y + h, float(det.get("score", 1.0))])
    else:
        raise ExposeError("expected a JSON object or a COCO results list", path=path)
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def box_keys(path: str | Path, root: str | Path | None = None) -> list[str]:
    """The keys a boxes file may use for ``path``, most specific first: the path relative to the
    input folder ``root``, relative to the working directory, as given; then the file name."""
    path = Path(path)
    keys: list[str] = []
    bases = [Path(root)] if root is not None else []
    bases.append(Path.cwd())
    for base in bases:
        for p, b in ((path, base), (path.absolute(), base.absolute())):
            try:
                keys.append(p.relative_to(b).as_posix())
                break
            except ValueError:
                continue
    keys.append(path.as_posix())
    keys.append(path.name)
    return list(dict.fromkeys(k for k in keys if k and k != "."))


def boxes_for(table: dict[str, list[list[float]]], file_name: str | Path,
              root: str | Path | None = None) -> list[list[float]] | None:
    """Look a file up by relative path (to ``root`` or the working directory), full name, stem, or
    the integer in its name (COCO ids). ``None``: not in the table (an empty list: no person)."""
    for key in box_keys(file_name, root):
        if key in table:
            return table[key]
    stem = Path(file_name).stem
    if stem in table:
        return table[stem]
    digits = "".join(ch for ch in stem if ch.isdigit())
    if digits and str(int(digits)) in table:
        return table[str(int(digits))]
    return None


def detect_hog(image_rgb: np.ndarray, min_score: float = 0.0) -> list[list[float]]:
    """People boxes ``[x1, y1, x2, y2, score]`` from OpenCV's HOG + linear SVM detector.

    Small images are upscaled so a person can reach the detector's 64x128 window.
    """
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    scale = 1.0
    if max(gray.shape) > 1280:
        scale = 1280 / max(gray.shape)
    elif min(gray.shape) < 256:
        scale = 256 / min(gray.shape)
    if scale != 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale)
    # An image narrower or lower than HOG's 64 x 128 px window (after the scaling: a 20 x 2000 px
    # strip) makes OpenCV assert or crash: pad it (bottom/right, boxes keep their coordinates).
    win_w, win_h = hog.winSize
    pad_h, pad_w = max(0, win_h - gray.shape[0]), max(0, win_w - gray.shape[1])
    if pad_h or pad_w:
        gray = cv2.copyMakeBorder(gray, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=114)
    rects, weights = hog.detectMultiScale(gray, winStride=(8, 8), padding=(16, 16), scale=1.05)
    boxes = []
    for (x, y, w, h), s in zip(rects, np.asarray(weights).reshape(-1), strict=True):
        if s >= min_score:
            boxes.append([x / scale, y / scale, (x + w) / scale, (y + h) / scale, float(s)])
    return nms(boxes, 0.5)


def nms(boxes: list[list[float]], iou_threshold: float) -> list[list[float]]:
    """Greedy non-maximum suppression of ``[x1, y1, x2, y2, score]`` boxes, highest score first."""
    kept: list[list[float]] = []
    for b in sorted(boxes, key=lambda b: -b[4]):
        if all(iou(b, k) < iou_threshold for k in kept):
            kept.append(b)
    return kept


def iou(a, b) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2, ...]`` boxes."""
    return float(iou_matrix([a], [b])[0, 0])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [N, >=4] with every box of ``b`` [M, >=4] (``x1, y1, x2, y2``)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, np.shape(a)[-1] if np.size(a) else 4)[:, :4]
    b = np.asarray(b, dtype=np.float64).reshape(-1, np.shape(b)[-1] if np.size(b) else 4)[:, :4]
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def validate_boxes(boxes: list[list[float]], image_size: tuple[int, int]) -> tuple[list[list[float]], list[str]]:
    """Clip ``[x1, y1, x2, y2, score]`` boxes to the image (``(height, width)``); drop those that are
    not finite, have no area or lie entirely outside. Returns the kept boxes and one warning per
    dropped box (clipping is silent: detector boxes often reach past the border)."""
    h, w = image_size
    kept, warnings = [], []
    for i, b in enumerate(boxes):
        x1, y1, x2, y2 = (float(v) for v in b[:4])
        score = float(b[4]) if len(b) > 4 else 1.0
        shown = "[" + ", ".join(f"{v:g}" for v in (x1, y1, x2, y2)) + "]"
        if not all(np.isfinite([x1, y1, x2, y2, score])):
            warnings.append(f"box {i} {shown}: not finite, dropped")
            continue
        if x2 <= x1 or y2 <= y1:
            warnings.append(f"box {i} {shown}: zero or negative area, dropped")
            continue
        cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
        if cx2 <= cx1 or cy2 <= cy1:
            warnings.append(f"box {i} {shown}: outside the {w}x{h} image, dropped")
            continue
        kept.append([cx1, cy1, cx2, cy2, score])
    return kept, warnings


def full_image_box(image_rgb: np.ndarray) -> list[list[float]]:
    h, w = image_rgb.shape[:2]
    return [[0.0, 0.0, float(w), float(h), 1.0]]
