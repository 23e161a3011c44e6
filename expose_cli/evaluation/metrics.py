"""Error metrics of 3D human mesh recovery, as pure torch functions.

Every metric returns per-sample values ``[B]`` in the units of its inputs: pass millimetres
(metres x 1000) to get the numbers papers report. ``PA-`` means after similarity Procrustes
alignment of the prediction onto the ground truth (scale, rotation, translation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from expose_cli.geometry.procrustes import similarity_procrustes


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float64)


def mpjpe(pred, gt) -> torch.Tensor:
    """Mean per-joint position error: mean Euclidean distance over ``[B, N, 3]`` points."""
    return torch.linalg.norm(_t(pred) - _t(gt), dim=-1).mean(-1)


def pa_mpjpe(pred, gt) -> torch.Tensor:
    """MPJPE after aligning ``pred`` onto ``gt`` with a similarity transform (per sample)."""
    aligned = similarity_procrustes(_t(pred), _t(gt))[0]
    return mpjpe(aligned, gt)


#: Vertex errors are the same computation over mesh vertices.
pve = mpjpe
pa_pve = pa_mpjpe


def part_pa_error(pred, gt, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
    """PA error of one part (MMHuman3D/ExPose EHF protocol): slice the part's points, align them
    on their own, then take the mean distance."""
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
    return pa_mpjpe(_t(pred)[:, idx], _t(gt)[:, idx])


def root_aligned_error(pred, gt, pred_root, gt_root) -> torch.Tensor:
    """Mean distance after translating each set so its root is at the origin (Hand4Whole protocol).

    ``pred_root`` / ``gt_root``: ``[B, 3]`` root positions (e.g. pelvis, a wrist, the neck), or
    ``[B, K, 3]`` whose mean is used.
    """
    pred, gt = _t(pred), _t(gt)
    pr, gr = _t(pred_root), _t(gt_root)
    if pr.ndim == 3:
        pr = pr.mean(1)
    if gr.ndim == 3:
        gr = gr.mean(1)
    return mpjpe(pred - pr[:, None], gt - gr[:, None])


def _nearest_distances(a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """For each point of ``a`` [N, 3], the distance to the nearest point of ``b`` [M, 3]."""
    out = []
    for start in range(0, a.shape[0], chunk):
        out.append(torch.cdist(a[start : start + chunk], b).min(dim=1).values)
    return torch.cat(out) if out else a.new_zeros(0)


def f_score(pred, gt, threshold: float) -> torch.Tensor:
    """F-score at ``threshold`` between point sets ``[B, N, 3]`` and ``[B, M, 3]`` (FreiHAND).

    Recall: fraction of ground-truth points within ``threshold`` of the prediction; precision:
    fraction of predicted points within ``threshold`` of the ground truth; F = 2pr / (p + r).
    """
    pred, gt = _t(pred), _t(gt)
    scores = []
    for p, g in zip(pred, gt, strict=True):
        recall = (_nearest_distances(g, p) < threshold).double().mean()
        precision = (_nearest_distances(p, g) < threshold).double().mean()
        denom = precision + recall
        scores.append(torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), denom))
    return torch.stack(scores)


def point_to_triangle_distance(points, triangles) -> torch.Tensor:
    """Exact Euclidean distance from ``points`` [P, 3] to each of ``triangles`` [T, 3, 3] -> [P, T]."""
    p = points[:, None, :]
    return _closest_point_distance(p, triangles[None, :, 0], triangles[None, :, 1], triangles[None, :, 2])


def _closest_point_distance(p, a, b, c) -> torch.Tensor:
    """Distance from ``p`` to triangle ``(a, b, c)`` (broadcast, last dim 3).

    Closest point by Voronoi region of the triangle (Ericson, Real-Time Collision Detection 5.1.5).
    """
    ab, ac, ap = b - a, c - a, p - a
    d1 = (ab * ap).sum(-1)
    d2 = (ac * ap).sum(-1)
    bp = p - b
    d3 = (ab * bp).sum(-1)
    d4 = (ac * bp).sum(-1)
    cp = p - c
    d5 = (ab * cp).sum(-1)
    d6 = (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    eps = 1e-30
    # Default: interior of the face.
    denom = (va + vb + vc).clamp(min=eps)
    v = vb / denom
    w = vc / denom
    closest = a + ab * v[..., None] + ac * w[..., None]

    def choose(mask, value):
        nonlocal closest
        closest = torch.where(mask[..., None], value, closest)

    # Regions in reverse order of Ericson's early returns, so that the first match wins.
    bc_w = (d4 - d3) / ((d4 - d3) + (d5 - d6)).clamp(min=eps)
    choose((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), b + (c - b) * bc_w[..., None])
    ac_w = d2 / (d2 - d6).clamp(min=eps)
    choose((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + ac * ac_w[..., None])
    choose((d6 >= 0) & (d5 <= d6), c.expand_as(closest))
    ab_v = d1 / (d1 - d3).clamp(min=eps)
    choose((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + ab * ab_v[..., None])
    choose((d3 >= 0) & (d4 <= d3), b.expand_as(closest))
    choose((d1 <= 0) & (d2 <= 0), a.expand_as(closest))
    return torch.linalg.norm(p - closest, dim=-1)


def point_to_mesh_distance(points, vertices, faces, chunk: int = 2048) -> torch.Tensor:
    """Exact distance (input units) from each of ``points`` [P, 3] to the surface of a triangle mesh.

    Exact, with pruning: a point's nearest mesh vertex bounds its distance to the surface from
    above, and ``|p - centroid| - radius`` bounds its distance to a triangle from below, so only
    the triangles whose lower bound does not exceed the upper bound are measured exactly (a few
    dozen of FLAME's 9976 per scan point instead of all of them).
    """
    pts = _t(points)
    verts = _t(vertices)
    tris = verts[torch.as_tensor(np.asarray(faces), dtype=torch.long)]  # [T, 3, 3]
    centroids = tris.mean(dim=1)
    radii = torch.linalg.norm(tris - centroids[:, None], dim=-1).amax(dim=1)
    used = torch.unique(torch.as_tensor(np.asarray(faces), dtype=torch.long))
    out = []
    for start in range(0, pts.shape[0], chunk):
        p = pts[start : start + chunk]
        upper = torch.cdist(p, verts[used]).min(dim=1).values
        lower = torch.cdist(p, centroids) - radii
        slack = 1e-9 * (1.0 + upper.abs())  # cdist's rounding must never prune the nearest triangle
        pi, ti = torch.nonzero(lower <= (upper + slack)[:, None], as_tuple=True)
        dist = point_to_triangle_distance_pairs(p[pi], tris[ti])
        best = upper.clone().scatter_reduce_(0, pi, dist, reduce="amin", include_self=True)
        out.append(best)
    return torch.cat(out) if out else pts.new_zeros(0)


def point_to_triangle_distance_pairs(points, triangles) -> torch.Tensor:
    """Exact distance from ``points[i]`` [N, 3] to ``triangles[i]`` [N, 3, 3] -> [N]."""
    return _closest_point_distance(points, triangles[:, 0], triangles[:, 1], triangles[:, 2])


def stirling_face_mask(scan_landmarks) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and radius of the face region of the Stirling/ESRC protocol (7 landmarks, mm).

    Centre ``p4 + 0.3 (nose_bridge - p4)``, radius ``1.2 (|p0 - p3| + |nose_bridge - p4|) / 2``,
    with ``nose_bridge`` the mean of the inner eye corners p1, p2.
    """
    lm = _t(scan_landmarks)
    nose_bottom = lm[4]
    nose_bridge = 0.5 * (lm[1] + lm[2])
    centre = nose_bottom + 0.3 * (nose_bridge - nose_bottom)
    radius = 1.2 * (torch.linalg.norm(lm[0] - lm[3]) + torch.linalg.norm(nose_bridge - nose_bottom)) / 2
    return centre, radius


def stirling_3drmse(
    scan_vertices, scan_landmarks, pred_vertices, pred_faces, pred_landmarks
) -> torch.Tensor:
    """The Stirling/ESRC "3DRMSE" as MMHuman3D computes it (a mean distance, not an RMS).

    1. Similarity-align the predicted mesh onto the scan with the 7 landmark pairs.
    2. Keep the scan vertices inside the face region (:func:`stirling_face_mask`).
    3. Mean distance from those scan vertices to the aligned predicted surface.
    Inputs in millimetres give millimetres.
    """
    pred_v = _t(pred_vertices)
    _, s, R, t = similarity_procrustes(_t(pred_landmarks)[None], _t(scan_landmarks)[None])
    aligned = s[0] * pred_v @ R[0].T + t[0]
    scan = _t(scan_vertices)
    centre, radius = stirling_face_mask(scan_landmarks)
    inside = torch.linalg.norm(scan - centre, dim=-1) <= radius
    return point_to_mesh_distance(scan[inside], aligned, pred_faces).mean()
