"""Temporal smoothing of one person track: one-euro or Savitzky-Golay filters.

Rotations are smoothed as unit quaternions made sign-continuous along the track (q and -q are the
same rotation; each frame takes the sign nearer the previous one), filtered per component and
renormalised: the filter then averages nearby points of the rotation manifold, never axis-angle
vectors, whose wrap-around at pi would tear. Shape (betas) is one value per track, the median.
Everything else (cameras, translations, expressions) is filtered as plain numbers.

Videos default to Savitzky-Golay (window 11, cubic): it is zero-phase, so a clean moving track
stays within a fraction of a millimetre, while the causal one-euro filter lags behind motion
(tens of millimetres on a walking track at 30 fps; docs/infer.md gives the measurement). One-euro
suits a live stream, where later frames are not known yet.
"""

from __future__ import annotations

import numpy as np
import torch

from expose_cli.geometry.rotations import axis_angle_to_quaternion, quaternion_to_axis_angle

METHODS = ("none", "oneeuro", "savgol")


def one_euro(x: np.ndarray, fps: float, min_cutoff: float = 1.0, beta: float = 0.05,
             d_cutoff: float = 1.0) -> np.ndarray:
    """One-euro filter (Casiez et al., CHI 2012) along axis 0 of ``x`` [T, ...] sampled at ``fps`` Hz.

    ``min_cutoff`` (Hz) sets the smoothing at rest, ``beta`` how fast the cut-off rises with speed
    (units of ``x`` per second), ``d_cutoff`` (Hz) the smoothing of the speed estimate.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    if len(x) == 0:
        return out
    dt = 1.0 / fps

    def alpha(cutoff):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    out[0], dx_hat = x[0], np.zeros_like(x[0])
    a_d = alpha(d_cutoff)
    for t in range(1, len(x)):
        dx = (x[t] - out[t - 1]) / dt
        dx_hat = a_d * dx + (1 - a_d) * dx_hat
        a = alpha(min_cutoff + beta * np.abs(dx_hat))
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


def savgol_weights(offsets: np.ndarray, order: int) -> np.ndarray:
    """Weights that give, from samples at integer ``offsets`` from the target frame, the value at
    offset 0 of the least-squares polynomial of degree ``order`` through them."""
    design = np.vander(offsets.astype(np.float64), order + 1, increasing=True)
    return np.linalg.pinv(design)[0]


def savgol(x: np.ndarray, window: int = 11, order: int = 3) -> np.ndarray:
    """Savitzky-Golay filter along axis 0 of ``x`` [T, ...]: each frame is replaced by the value of
    the degree-``order`` least-squares polynomial over ``window`` frames (odd) around it; near the
    ends the window stays inside the track and the polynomial is evaluated off-centre."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return x.copy()
    window = min(window, n if n % 2 else n - 1)
    order = min(order, window - 1)
    half = window // 2
    flat = x.reshape(n, -1)
    out = np.empty_like(flat)
    windows = np.lib.stride_tricks.sliding_window_view(flat, window, axis=0)  # [n - 2 half, D, window]
    out[half:n - half] = windows @ savgol_weights(np.arange(-half, half + 1), order)
    for t in [*range(half), *range(n - half, n)]:  # the ends: the window stays inside the track
        start = int(np.clip(t - half, 0, n - window))
        out[t] = savgol_weights(np.arange(start, start + window) - t, order) @ flat[start:start + window]
    return out.reshape(x.shape)


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 of ``q`` [T, ..., 4] so consecutive quaternions have dot >= 0."""
    q = np.array(q, dtype=np.float64)
    for t in range(1, len(q)):
        flip = np.sum(q[t] * q[t - 1], axis=-1, keepdims=True) < 0
        q[t] = np.where(flip, -q[t], q[t])
    return q


def _filter(x: np.ndarray, method: str, fps: float, **kw) -> np.ndarray:
    if method == "oneeuro":
        return one_euro(x, fps, **kw)
    if method == "savgol":
        return savgol(x, **kw)
    return np.asarray(x, dtype=np.float64).copy()


def smooth_rotations(axis_angle: np.ndarray, method: str, fps: float, **kw) -> np.ndarray:
    """Smooth ``axis_angle`` [T, J, 3] (radians) on the rotation manifold; same shape out."""
    if method == "none" or len(axis_angle) < 2:
        return np.asarray(axis_angle, dtype=np.float64).copy()
    q = axis_angle_to_quaternion(torch.as_tensor(np.asarray(axis_angle), dtype=torch.float64)).numpy()
    q = _filter(continuous_quaternions(q), method, fps, **kw)
    q /= np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    return quaternion_to_axis_angle(torch.from_numpy(q)).numpy()


def smooth_track(params: dict[str, np.ndarray], method: str, fps: float, rotation_keys: tuple[str, ...],
                 **kw) -> dict[str, np.ndarray]:
    """Smooth one track's per-frame parameters (each ``[T, ...]``).

    ``rotation_keys`` name axis-angle arrays (``[T, J, 3]`` or ``[T, 3]``); ``betas`` becomes the
    per-track median repeated over frames; every other array is filtered as it is.
    """
    if method not in METHODS:
        raise ValueError(f"unknown smoothing {method!r}; choose one of {', '.join(METHODS)}")
    if method == "none":
        return {name: np.asarray(value, dtype=np.float64).copy() for name, value in params.items()}
    out = {}
    for name, value in params.items():
        value = np.asarray(value, dtype=np.float64)
        if name in rotation_keys:
            shaped = value.reshape(len(value), -1, 3)
            out[name] = smooth_rotations(shaped, method, fps, **kw).reshape(value.shape)
        elif name == "betas":
            out[name] = np.repeat(np.median(value, axis=0, keepdims=True), len(value), axis=0)
        else:
            out[name] = _filter(value, method, fps, **kw)
    return out
