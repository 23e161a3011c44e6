"""``expose eval ... --report DIR``: what ``expose view DIR`` shows of a benchmark run.

``report.json`` (the metric rows beside the published numbers, every per-sample value, the worst
samples), ``worst/NN.jpg`` (each worst sample's person crop beside its predicted mesh, front and
turned 90 degrees; eval predicts no full-image camera, so the mesh is drawn beside the crop, not
over it) and, for benchmarks with ground-truth vertices (EHF, FreiHAND), ``error_mesh.npz``: the
worst sample's predicted mesh, aligned to the truth as PA-PVE aligns it, with each vertex's error.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from expose_cli.geometry.procrustes import similarity_procrustes
from expose_cli.inference.render import render_views
from expose_cli.io.images import write_image
from expose_cli.utils.atomic import atomic_path, write_json_atomic

WORST = 8
PANEL = 240  # px: the height of each worst sample's picture
CAMERA = {"focal": 1000.0, "size": [720, 540]}  # the virtual camera a mesh alone is seen with (px; height, width)


def place_in_front(vertices: np.ndarray, camera: dict = CAMERA, fill: float = 0.8) -> np.ndarray:
    """``vertices`` (metres, y down) centred on the optical axis of ``camera``, as far away as makes
    their height (or width, whichever fills more) at their nearest depth ``fill`` of its image."""
    v = np.asarray(vertices, np.float64)
    centre = (v.max(0) + v.min(0)) / 2
    h, w = camera["size"]
    extent = max(float(np.ptp(v[:, 1])), float(np.ptp(v[:, 0])) * h / w, 1e-3)
    depth = camera["focal"] * extent / (fill * h) + float(np.ptp(v[:, 2])) / 2
    return v - centre + np.array([0.0, 0.0, depth])


def worst_metric(rows: list[dict]) -> str:
    """The metric the worst samples are ranked by: the first in millimetres (else the first)."""
    return next((r["metric"] for r in rows if r["unit"] == "mm"), rows[0]["metric"])


def _crop(raw_root: Path, image: str, box_xywh) -> np.ndarray:
    """The sample's person box from its image (RGB, :data:`PANEL` px high); grey when unreadable."""
    img = cv2.imread(str(raw_root / image))
    if img is None:
        return np.full((PANEL, PANEL, 3), 128, np.uint8)
    x, y, w, h = (int(round(float(c))) for c in box_xywh[:4])
    crop = img[max(y, 0):max(y + h, 1), max(x, 0):max(x + w, 1)]
    if crop.size == 0:
        crop = img
    scale = PANEL / crop.shape[0]
    return cv2.cvtColor(cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), PANEL)), cv2.COLOR_BGR2RGB)


def _sample_picture(path: Path, crop: np.ndarray, vertices: np.ndarray | None, faces: np.ndarray | None) -> None:
    """``crop`` beside the predicted mesh (front, then turned 90 degrees), as a JPEG."""
    panels = [crop]
    if vertices is not None and faces is not None:
        h, w = CAMERA["size"]
        views = render_views(np.full((h, w, 3), 255, np.uint8), [(place_in_front(vertices), faces)], CAMERA["focal"],
                             views=(90.0,))
        panels.append(cv2.resize(views, (round(views.shape[1] * PANEL / h), PANEL)))
    write_image(path, np.concatenate(panels, axis=1), (cv2.IMWRITE_JPEG_QUALITY, 85))


def write_error_mesh(path: Path, pred: np.ndarray, truth: np.ndarray, faces: np.ndarray) -> None:
    """``pred`` aligned to ``truth`` (similarity Procrustes, as PA-PVE) and each vertex's distance (mm)."""
    aligned = similarity_procrustes(np.asarray(pred, np.float64), np.asarray(truth, np.float64))[0]
    errors = np.linalg.norm(aligned - truth, axis=-1) * 1000.0
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, vertices=aligned.astype(np.float32), faces=np.asarray(faces, np.int64), errors=errors.astype(np.float32))


def write_report(folder: Path, info: dict, rows: list[dict], per_sample: dict, preds: dict, reader,
                 faces: np.ndarray | None) -> Path:
    """The report folder ``folder`` of one benchmark run (see the module's doc); returns ``report.json``.
    ``reader``: the benchmark's data file (images, boxes, ground-truth vertices); ``faces``: the
    predicted meshes' triangles (``None``: no mesh pictures)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(preds["image_path"])
    metric = worst_metric(rows)
    values = np.asarray(per_sample[metric], np.float64)
    order = [int(i) for i in np.argsort(np.where(np.isfinite(values), -values, np.inf), kind="stable")[:WORST]]
    raw_root, boxes = Path(str(reader.attrs["raw_root"])), reader.column("bbox_xywh")[:n]
    (folder / "worst").mkdir(exist_ok=True)
    worst = []
    for rank, i in enumerate(order):
        name = f"worst/{rank:02d}.jpg"
        verts = preds["vertices"][i] if faces is not None else None
        _sample_picture(folder / name, _crop(raw_root, str(preds["image_path"][i]), boxes[i]), verts, faces)
        worst.append({"index": i, "image": str(preds["image_path"][i]), "value": float(values[i]), "overlay": name})
    error_mesh = None
    truth = reader.column("vertices")[:n] if "vertices" in reader and faces is not None else None
    if truth is not None and order and truth.shape[1:] == preds["vertices"].shape[1:]:
        write_error_mesh(folder / "error_mesh.npz", preds["vertices"][order[0]], truth[order[0]], faces)
        error_mesh = {"file": "error_mesh.npz", "sample": order[0], "unit": "mm",
                      "note": "the predicted mesh aligned to the ground truth as PA-PVE aligns it"}
    report = {"kind": "eval", "benchmark": info["benchmark"], "subset": info.get("subset"),
              "protocol": info.get("protocol", ""), "num_samples": n, "metrics": rows,
              "per_sample": {k: [float(x) if np.isfinite(x) else None for x in np.asarray(v, np.float64)]
                             for k, v in per_sample.items()},
              "image_paths": [str(p) for p in preds["image_path"]],
              "worst": {"metric": metric, "samples": worst}, "error_mesh": error_mesh, "provenance": info}
    write_json_atomic(folder / "report.json", report)
    return folder / "report.json"
