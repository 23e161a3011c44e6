"""`--render --views`: each mesh turned about its own vertical axis, panels beside the overlay."""

from __future__ import annotations

import numpy as np
import pytest
import typer

from expose_cli.cli.infer import parse_views
from expose_cli.inference.render import render_views


def _box(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned box (camera frame, m) as 8 vertices and 12 triangles."""
    x, y, z = zip(lo, hi, strict=True)
    v = np.array([[x[i], y[j], z[k]] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    f = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    return v, f


def _body_with_nose():
    """A 0.4 m cube 3 m in front of the camera, a 0.1 m square nose sticking 1.2 m out of it toward the camera."""
    body_v, body_f = _box((-0.2, -0.2, 2.8), (0.2, 0.2, 3.2))
    nose_v, nose_f = _box((-0.05, -0.05, 1.6), (0.05, 0.05, 2.8))
    return np.concatenate([body_v, nose_v]), np.concatenate([body_f, nose_f + len(body_v)])


def test_quarter_turn_moves_the_front_to_the_computed_pixel():
    verts, faces = _body_with_nose()
    f, size = 250.0, 200
    image = np.zeros((size, size, 3), np.uint8)
    out = render_views(image, [(verts, faces)], f, views=(90.0, 270.0), background=255)
    assert out.shape == (size, 3 * size, 3)  # the overlay, then one panel per angle
    # By hand: the turn is about the vertical line through the vertices' mean c. A point p in front
    # (p - c = (0, 0, dz), dz < 0) lands at c + (dz, 0, 0) after +90 degrees (the front turns to the
    # image's left), at c - (dz, 0, 0) after 270.
    c = verts.mean(0)
    p = np.array([0.0, 0.0, 1.7])  # inside the nose, near its tip
    dz = p[2] - c[2]
    row = int(round(f * c[1] / c[2] + size / 2))
    left = int(round(f * (c[0] + dz) / c[2] + size / 2))
    right = int(round(f * (c[0] - dz) / c[2] + size / 2))
    assert left < size / 2 - 0.2 * f / c[2] - 5  # beyond the cube's own silhouette: only the nose is there
    at_90, at_270 = out[:, size:2 * size], out[:, 2 * size:]
    assert (at_90[row, left] < 250).all() and (at_90[row, right] == 255).all()
    assert (at_270[row, right] < 250).all() and (at_270[row, left] == 255).all()
    # the un-turned overlay: the nose points at the camera, covering the image centre
    assert (out[size // 2, size // 2] > 0).all() and (out[row, left] == 0).all()


def test_no_views_is_the_overlay_alone_and_bad_views_are_refused():
    verts, faces = _body_with_nose()
    image = np.zeros((60, 80, 3), np.uint8)
    assert render_views(image, [(verts, faces)], 100.0).shape == image.shape
    assert render_views(image, [], 100.0, views=(90.0,)).shape == (60, 160, 3)  # a frame without persons
    assert parse_views(" 90, 180 ,270") == (90.0, 180.0, 270.0) and parse_views("") == ()
    with pytest.raises(typer.BadParameter, match="not a list of numbers"):
        parse_views("90,side")
