"""The overlay's painter (:func:`expose_cli.inference.render.render_overlay`) against the plain way:
every triangle's colour filled far to near into a frame-sized layer and a coverage mask, then
``uint8(alpha * layer + (1 - alpha) * image)`` where covered. Same pixels, bit for bit."""

import cv2
import numpy as np
import pytest

from expose_cli.inference.render import render_overlay, track_colour


def _plain(image, verts, faces, focal, alpha):
    """One mesh drawn the plain way (the same camera and Lambert shading as render_overlay)."""
    h, w = image.shape[:2]
    px = verts[:, :2] / verts[:, 2:3] * focal + np.array([w / 2, h / 2])
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    colour = (0.3 + 0.7 * np.abs(n[:, 2]))[:, None] * np.array(track_colour(0))[None] * 255
    layer, mask = np.zeros_like(image), np.zeros((h, w), np.uint8)
    for f in np.argsort(-tri[:, :, 2].mean(1)):
        if (px[faces[f]].max(0) < 0).any() or (px[faces[f]].min(0) >= [w, h]).any():
            continue  # wholly off the frame (left, above, right, below): not drawn
        corners = np.round(px[faces[f]] * 4).astype(np.int32)
        cv2.fillConvexPoly(layer, corners, colour[f].tolist(), lineType=cv2.LINE_8, shift=2)
        cv2.fillConvexPoly(mask, corners, 255, lineType=cv2.LINE_8, shift=2)
    out, sel = image.copy(), mask > 0
    out[sel] = (alpha * layer[sel] + (1 - alpha) * out[sel]).astype(np.uint8)
    return out


@pytest.mark.parametrize("alpha", [0.8, 1.0, 0.35])
def test_overlay_equals_filling_every_triangle_over_the_whole_frame(alpha):
    rng = np.random.default_rng(7)
    for trial in range(40):  # even: across every border and off the frame; odd: well inside it
        h, w = (int(x) for x in rng.integers(6, 48, 2))
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        corners = (rng.uniform(-0.4, 1.4, (12, 3, 2)) if trial % 2 == 0 else rng.uniform(0.2, 0.8, (12, 3, 2))) * [w, h]
        z = rng.uniform(1.0, 3.0, (36, 1))
        verts = np.concatenate([(corners.reshape(-1, 2) - [w / 2, h / 2]) / 50.0 * z, z], axis=1)
        faces = np.arange(36).reshape(12, 3)
        want = _plain(image, verts, faces, 50.0, alpha)
        assert np.array_equal(render_overlay(image, [(verts, faces)], 50.0, alpha=alpha), want), trial
        assert (want != image).any() or trial % 7  # mostly something is drawn
