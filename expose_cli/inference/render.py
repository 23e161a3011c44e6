"""Mesh overlays on CPU with OpenCV: perspective projection, Lambert shading, painter's algorithm.

Triangles of every person are sorted together by depth and filled far to near, so nearer people
and nearer parts cover farther ones. No OpenGL, works headless.
"""

from __future__ import annotations

import cv2
import numpy as np

COLOURS = [(0.65, 0.74, 0.86), (0.86, 0.65, 0.65), (0.65, 0.86, 0.70), (0.86, 0.80, 0.60)]


def render_overlay(image_rgb: np.ndarray, meshes: list[tuple[np.ndarray, np.ndarray]], focal_length: float,
                   alpha: float = 0.8, colour_ids: list[int] | None = None,
                   labels: list[tuple[str, np.ndarray]] | None = None) -> np.ndarray:
    """Draw ``meshes`` (``(vertices in the camera frame [m], faces)``) over the image.

    Camera: focal length ``focal_length`` px, principal point at the image centre, looking down +z.
    ``colour_ids`` picks each mesh's colour (e.g. its track id; default: its index); ``labels``
    writes ``(text, box x1 y1 x2 y2 px)`` at each box's top-left corner.
    """
    h, w = image_rgb.shape[:2]
    canvas = image_rgb.copy()
    mask = np.zeros((h, w), np.uint8)
    light = np.array([0.0, 0.0, -1.0])
    all_pts, all_depth, all_colour = [], [], []
    for i, (verts, faces) in enumerate(meshes):
        v = np.asarray(verts, dtype=np.float64)
        z = v[:, 2]
        if np.any(z <= 1e-6):
            keep_faces = np.all(z[faces] > 1e-6, axis=1)
            faces = faces[keep_faces]
        px = v[:, :2] / np.maximum(z[:, None], 1e-6) * focal_length + np.array([w / 2, h / 2])
        tri = v[faces]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        shade = 0.3 + 0.7 * np.abs(normals @ light)
        base = np.array(track_colour(colour_ids[i] if colour_ids is not None else i)) * 255
        all_pts.append(px[faces])
        all_depth.append(tri[:, :, 2].mean(1))
        all_colour.append(shade[:, None] * base[None])
    if not all_pts:
        return _draw_labels(canvas, labels)
    pts = np.concatenate(all_pts)
    depth = np.concatenate(all_depth)
    colour = np.concatenate(all_colour)
    # only triangles that touch the image
    inside = (pts[:, :, 0].max(1) >= 0) & (pts[:, :, 0].min(1) < w) & (pts[:, :, 1].max(1) >= 0) & (pts[:, :, 1].min(1) < h)
    order = np.argsort(-depth[inside])
    pts_i = np.round(pts[inside][order] * 4).astype(np.int32)  # 2 fractional bits
    col_i = colour[inside][order]
    layer = np.zeros_like(canvas)
    for tri, c in zip(pts_i, col_i, strict=True):
        cv2.fillConvexPoly(layer, tri, c.tolist(), lineType=cv2.LINE_8, shift=2)
        cv2.fillConvexPoly(mask, tri, 255, lineType=cv2.LINE_8, shift=2)
    sel = mask > 0
    canvas[sel] = (alpha * layer[sel] + (1 - alpha) * canvas[sel]).astype(np.uint8)
    return _draw_labels(canvas, labels, colour_ids)


def track_colour(index: int) -> tuple[float, float, float]:
    """An RGB colour in [0, 1] per index: the four pastel ones, then golden-ratio hues."""
    if index < len(COLOURS):
        return COLOURS[index]
    hue = (index * 0.618033988749895) % 1.0
    rgb = cv2.cvtColor(np.uint8([[[int(hue * 179), 110, 220]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(float(c) / 255 for c in rgb)


def _draw_labels(canvas: np.ndarray, labels, colour_ids=None) -> np.ndarray:
    for i, (text, box) in enumerate(labels or ()):
        colour = np.array(track_colour(colour_ids[i] if colour_ids is not None else i)) * 255
        x, y = int(round(float(box[0]))), int(round(float(box[1])))
        scale = max(0.5, canvas.shape[0] / 720)
        origin = (max(x, 0), max(y - 6, int(18 * scale)))
        cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), int(4 * scale), cv2.LINE_AA)
        cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour.tolist(), int(2 * scale), cv2.LINE_AA)
    return canvas
