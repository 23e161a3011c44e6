"""Mesh overlays on CPU with OpenCV: perspective projection, Lambert shading, painter's algorithm.

Triangles of every person are sorted together by depth and filled far to near, so nearer people
and nearer parts cover farther ones. No OpenGL, works headless.
"""

from __future__ import annotations

import functools

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
    canvas = image_rgb.copy()  # C-contiguous
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
    _paint(canvas, np.concatenate(all_pts), np.concatenate(all_depth), np.concatenate(all_colour), alpha)
    return _draw_labels(canvas, labels, colour_ids)


def _paint(canvas: np.ndarray, pts: np.ndarray, depth: np.ndarray, colour: np.ndarray, alpha: float) -> None:
    """Triangles ``pts`` [F, 3, 2] (px) filled far to near (``depth``) in their RGB ``colour``
    (0..255) and blended with ``alpha`` over ``canvas`` (C-contiguous, H x W x 3), in place.

    The pixels of filling each triangle's colour into a frame-sized layer and a coverage mask
    (the painter's algorithm, OpenCV's fixed-point fill), for less: only the triangles' bounding
    box is filled (2 px margin: a fill reaches at most one pixel past its corners), each triangle
    once, its number into a buffer; the blend, ``uint8(alpha * layer + (1 - alpha) * image)``
    in float64, is looked up in a table of all 256 x 256 pairs built with that same expression."""
    h, w = canvas.shape[:2]
    a, b, c = pts[:, 0], pts[:, 1], pts[:, 2]
    inside = (np.maximum(np.maximum(a, b), c) >= 0).all(1) & (np.minimum(np.minimum(a, b), c) < [w, h]).all(1)
    if not inside.any():
        return
    order = np.argsort(-depth[inside])
    pts_i = np.round(pts[inside][order] * 4).astype(np.int64)  # 2 fractional bits
    x0, y0 = (max(int(pts_i[:, :, k].min()) // 4 - 2, 0) for k in (0, 1))
    x1, y1 = min(int(pts_i[:, :, 0].max()) // 4 + 3, w), min(int(pts_i[:, :, 1].max()) // 4 + 3, h)
    painted = np.zeros((y1 - y0, x1 - x0), np.int32)  # 0: none, k: the k-th triangle, far to near
    fill = cv2.fillConvexPoly
    for k, tri in enumerate(list((pts_i - [x0 * 4, y0 * 4]).astype(np.int32)), 1):
        fill(painted, tri, k, cv2.LINE_8, 2)
    hit = np.flatnonzero(painted > 0)
    rows, cols = np.divmod(hit, x1 - x0)
    pixels = (rows + y0) * w + (cols + x0)
    flat = canvas.reshape(h * w, 3)  # a view: the canvas is contiguous
    palette = np.clip(np.rint(np.concatenate([np.zeros((1, 3)), colour[inside][order]])), 0, 255).astype(np.uint16)
    pairs = np.take(palette << 8, np.take(painted.reshape(-1), hit), axis=0) | np.take(flat, pixels, axis=0)
    blended = np.ascontiguousarray(np.take(_blend_table(alpha), pairs))
    rgb = np.dtype((np.void, 3))  # a pixel as one item: numpy scatters those faster than rows
    np.put(flat.view(rgb).reshape(-1), pixels, blended.view(rgb).reshape(-1))


@functools.lru_cache(maxsize=8)
def _blend_table(alpha: float) -> np.ndarray:
    """``uint8(alpha * layer + (1 - alpha) * image)`` for every ``(layer << 8) | image`` (uint8 pairs);
    made once per ``alpha`` (a run draws every frame with the same one), read-only."""
    layer, image = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    table = (alpha * layer + (1 - alpha) * image).astype(np.uint8).reshape(-1)
    table.flags.writeable = False
    return table


def rotate_about_vertical(vertices: np.ndarray, degrees: float) -> np.ndarray:
    """``vertices`` (camera frame, metres: x right, y down, z forward) turned by ``degrees`` about the
    vertical line (camera y) through their mean, as ExPose's demo turns each mesh for its extra views.

    Right-handed about +y (down): at +90 a point in front of the mean (toward the camera, -z) moves to
    the image's left (-x), so a person facing the camera shows their left side."""
    v = np.asarray(vertices, dtype=np.float64)
    t = np.radians(degrees)
    rot = np.array([[np.cos(t), 0.0, np.sin(t)], [0.0, 1.0, 0.0], [-np.sin(t), 0.0, np.cos(t)]])
    centre = v.mean(0)
    return (v - centre) @ rot.T + centre


def render_views(image_rgb: np.ndarray, meshes: list[tuple[np.ndarray, np.ndarray]], focal_length: float,
                 views: tuple[float, ...] = (), colour_ids: list[int] | None = None,
                 labels: list[tuple[str, np.ndarray]] | None = None, background: int = 255) -> np.ndarray:
    """The overlay (:func:`render_overlay`), then one panel per angle in ``views`` (degrees) to its
    right: every mesh turned about its own vertical axis (:func:`rotate_about_vertical`) and drawn
    opaque with the same camera on a plain ``background`` (grey level), the angle written at the top.
    Without ``views``: the overlay alone."""
    panels = [render_overlay(image_rgb, meshes, focal_length, colour_ids=colour_ids, labels=labels)]
    h, w = image_rgb.shape[:2]
    scale = max(0.5, h / 720)
    for deg in views:
        turned = [(rotate_about_vertical(v, deg), f) for v, f in meshes]
        blank = np.full_like(image_rgb, background)
        panel = render_overlay(blank, turned, focal_length, alpha=1.0, colour_ids=colour_ids)
        cv2.putText(panel, f"{deg:g} deg", (int(8 * scale), int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (60, 60, 60), max(1, int(2 * scale)), cv2.LINE_AA)
        panels.append(panel)
    return panels[0] if len(panels) == 1 else np.concatenate(panels, axis=1)


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


def render_shaded(background: np.ndarray, verts: np.ndarray, faces: np.ndarray, focal_length: float,
                  face_colours: np.ndarray) -> np.ndarray:
    """One mesh (camera frame, m) drawn opaque over ``background`` with per-face RGB colours (0..1),
    Lambert-shaded as :func:`render_overlay`. Vectorised z-buffer on the triangles' mean depth:
    fast for many small triangles (synthetic training images), same camera as :func:`render_overlay`."""
    h, w = background.shape[:2]
    v = np.asarray(verts, np.float64)
    keep = np.all(v[np.asarray(faces), 2] > 1e-6, axis=1)
    faces, face_colours = np.asarray(faces)[keep], np.asarray(face_colours, np.float64)[keep]
    px = v[:, :2] / v[:, 2:3] * focal_length + np.array([w / 2, h / 2])
    tri = v[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    colour = (0.3 + 0.7 * np.abs(normals[:, 2]))[:, None] * face_colours * 255
    depth_buf, index_buf = rasterize(px[faces], tri[:, :, 2].mean(1), (h, w))
    out = background.copy()
    hit = index_buf >= 0
    out[hit] = np.clip(colour[index_buf[hit]], 0, 255).astype(np.uint8)
    return out


def rasterize(pts: np.ndarray, depth: np.ndarray, size: tuple[int, int], small: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer of triangles ``pts`` [F, 3, 2] (px) with one depth each: per pixel (centres at integer
    coordinates) the nearest covering triangle's index (-1: none) and its depth. Triangles whose box
    is at most ``small`` px are splatted together (numpy); larger ones are filled one by one with
    OpenCV, far to near, and the two buffers merged by depth."""
    h, w = size
    depth_buf = np.full(h * w, np.inf)
    index_buf = np.full(h * w, -1, np.int64)
    lo = np.clip(np.floor(pts.min(1)), 0, [w - 1, h - 1]).astype(np.int64)
    hi = np.clip(np.ceil(pts.max(1)), 0, [w - 1, h - 1]).astype(np.int64)
    extent = (hi - lo).max(1) + 1
    onscreen = (pts[:, :, 0].max(1) >= 0) & (pts[:, :, 0].min(1) < w) & (pts[:, :, 1].max(1) >= 0) & (pts[:, :, 1].min(1) < h)
    for side in (2, 4, 8, 16, 32)[: int(np.log2(small))]:
        sel = np.flatnonzero(onscreen & (extent <= side) & (extent > side // 2 if side > 2 else True))
        _splat(pts[sel], depth[sel], sel, lo[sel], side, (h, w), depth_buf, index_buf)
    big = np.flatnonzero(onscreen & (extent > small))
    if len(big):
        painted = np.full((h, w), -1, np.int32)
        fixed = np.round(pts[big] * 4).astype(np.int32)  # 2 fractional bits
        for k in np.argsort(-depth[big]):
            cv2.fillConvexPoly(painted, fixed[k], int(big[k]), lineType=cv2.LINE_8, shift=2)
        painted = painted.reshape(-1).astype(np.int64)
        hit = painted >= 0
        nearer = hit & (depth[np.maximum(painted, 0)] < depth_buf)
        depth_buf[nearer] = depth[painted[nearer]]
        index_buf[nearer] = painted[nearer]
    return depth_buf.reshape(h, w), index_buf.reshape(h, w)


def _splat(pts, depth, ids, lo, side, size, depth_buf, index_buf) -> None:
    """Rasterise triangles whose bounding box fits ``side`` px into the buffers (in place)."""
    if len(ids) == 0:
        return
    h, w = size
    gy, gx = np.mgrid[0:side, 0:side]
    x = (lo[:, 0, None] + gx.reshape(1, -1)).astype(np.int32)
    y = (lo[:, 1, None] + gy.reshape(1, -1)).astype(np.int32)
    a, b, c = (pts[:, i].astype(np.float32) for i in range(3))

    def edge(p, q):
        return (q[:, 0, None] - p[:, 0, None]) * (y - p[:, 1, None]) - (q[:, 1, None] - p[:, 1, None]) * (x - p[:, 0, None])

    e0, e1, e2 = edge(a, b), edge(b, c), edge(c, a)
    inside = ((e0 >= 0) & (e1 >= 0) & (e2 >= 0)) | ((e0 <= 0) & (e1 <= 0) & (e2 <= 0))
    inside &= (x >= 0) & (x < w) & (y >= 0) & (y < h)
    tri, pix = np.nonzero(inside)
    if len(tri) == 0:
        return
    flat = y[tri, pix].astype(np.int64) * w + x[tri, pix]
    z = depth[tri]
    order = np.lexsort((-z, flat))  # per pixel, nearest last
    flat, z, who = flat[order], z[order], ids[tri[order]]
    last = np.r_[flat[1:] != flat[:-1], True]
    flat, z, who = flat[last], z[last], who[last]
    better = z < depth_buf[flat]
    depth_buf[flat[better]] = z[better]
    index_buf[flat[better]] = who[better]
