"""Benchmark protocols: which points, which alignment, which units, as MMHuman3D computes them.

Inputs are metres; every number returned is millimetres, per sample.
"""

from __future__ import annotations

import numpy as np
import torch

from expose_cli.evaluation import metrics as M

#: The 21 SMPL-X vertices MMHuman3D appends to the 55 regressed joints for EHF (nose, eyes, ears,
#: toes, heels, then left and right fingertips): the ``smplx`` package's extra joints.
EHF_EXTRA_VERTICES = np.array([9120, 9929, 9448, 616, 6, 5770, 5780, 8846, 8463, 8474, 8635,
                               5361, 4933, 5058, 5169, 5286, 8079, 7669, 7794, 7905, 8022])
#: MMHuman3D's 'body' part of the 76 EHF joints: the body joints but the head, and the feet points.
EHF_BODY = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21, 60, 61, 62, 63, 64, 65])
EHF_LEFT_HAND = np.array(sorted(list(range(25, 40)) + [66, 67, 68, 69, 70, 20]))
EHF_RIGHT_HAND = np.array(sorted(list(range(40, 55)) + [71, 72, 73, 74, 75, 21]))

#: The seed's published numbers, in its order.
PUBLISHED = {
    "ehf": {"BODY PA-MPJPE": 55.70, "RIGHT_HAND PA-MPJPE": 14.6, "LEFT_HAND PA-MPJPE": 14.4, "PA-PVE": 56.65,
            "RIGHT_HAND PA-PVE": 14.6, "LEFT_HAND PA-PVE": 14.5, "FACE PA-PVE": 6.90},
    "freihand": {"PA-MPJPE": 10.03, "PA-PVE": 9.61},
    "3dpw": {"MPJPE": 92.59, "PA-MPJPE": 60.43},
    "stirling": {"3DRMSE": 2.40},
}


def ehf_joints(vertices: torch.Tensor, j_regressor: torch.Tensor) -> torch.Tensor:
    """The 76 EHF evaluation joints: SMPL-X ``J_regressor`` on the vertices + 21 extra vertices."""
    v = torch.as_tensor(vertices, dtype=torch.float64)
    joints = torch.einsum("jv,bvc->bjc", torch.as_tensor(j_regressor, dtype=torch.float64), v)
    return torch.cat([joints, v[:, torch.as_tensor(EHF_EXTRA_VERTICES)]], dim=1)


def ehf_metrics(pred_vertices, gt_vertices, j_regressor, left_hand_ids, right_hand_ids, face_ids) -> dict[str, np.ndarray]:
    """EHF as MMHuman3D reports it, each part aligned on its own (mm, per sample).

    Also, labelled ``H4W ...``, the protocol of later papers (Hand4Whole): vertex errors after
    translating to the pelvis (all), each wrist (hands) or the neck (face).
    """
    pv = torch.as_tensor(pred_vertices, dtype=torch.float64) * 1000.0
    gv = torch.as_tensor(gt_vertices, dtype=torch.float64) * 1000.0
    pj, gj = ehf_joints(pv, j_regressor), ehf_joints(gv, j_regressor)
    out = {
        "BODY PA-MPJPE": M.part_pa_error(pj, gj, EHF_BODY),
        "RIGHT_HAND PA-MPJPE": M.part_pa_error(pj, gj, EHF_RIGHT_HAND),
        "LEFT_HAND PA-MPJPE": M.part_pa_error(pj, gj, EHF_LEFT_HAND),
        "PA-PVE": M.pa_pve(pv, gv),
        "RIGHT_HAND PA-PVE": M.part_pa_error(pv, gv, right_hand_ids),
        "LEFT_HAND PA-PVE": M.part_pa_error(pv, gv, left_hand_ids),
        "FACE PA-PVE": M.part_pa_error(pv, gv, face_ids),
        "H4W PVE (pelvis-aligned)": M.root_aligned_error(pv, gv, pj[:, 0], gj[:, 0]),
        "H4W RIGHT_HAND PVE (wrist-aligned)": M.root_aligned_error(pv[:, right_hand_ids], gv[:, right_hand_ids], pj[:, 21], gj[:, 21]),
        "H4W LEFT_HAND PVE (wrist-aligned)": M.root_aligned_error(pv[:, left_hand_ids], gv[:, left_hand_ids], pj[:, 20], gj[:, 20]),
        "H4W FACE PVE (neck-aligned)": M.root_aligned_error(pv[:, face_ids], gv[:, face_ids], pj[:, 12], gj[:, 12]),
    }
    return {k: v.numpy() for k, v in out.items()}


def freihand_metrics(pred_joints, gt_joints, pred_vertices, gt_vertices) -> dict[str, np.ndarray]:
    """FreiHAND: PA-MPJPE on the 21 joints (root-relative), PA-PVE on the 778 vertices, and the
    F-scores at 5 and 15 mm on the aligned vertices (FreiHAND's ``eval.py``), mm."""
    pj = torch.as_tensor(pred_joints, dtype=torch.float64) * 1000.0
    gj = torch.as_tensor(gt_joints, dtype=torch.float64) * 1000.0
    pj, gj = pj - pj[:, :1], gj - gj[:, :1]
    pv = torch.as_tensor(pred_vertices, dtype=torch.float64) * 1000.0
    gv = torch.as_tensor(gt_vertices, dtype=torch.float64) * 1000.0
    from expose_cli.geometry.procrustes import similarity_procrustes

    aligned = similarity_procrustes(pv, gv)[0]
    return {
        "PA-MPJPE": M.pa_mpjpe(pj, gj).numpy(),
        "PA-PVE": M.mpjpe(aligned, gv).numpy(),
        "F@5mm": M.f_score(aligned, gv, 5.0).numpy(),
        "F@15mm": M.f_score(aligned, gv, 15.0).numpy(),
    }


def pw3d_metrics(pred_j14, gt_j14) -> dict[str, np.ndarray]:
    """3DPW: MPJPE and PA-MPJPE (mm) on LSP-14 joints, both centred on the mean of the hips (2, 3)."""
    p = torch.as_tensor(pred_j14, dtype=torch.float64) * 1000.0
    g = torch.as_tensor(gt_j14, dtype=torch.float64) * 1000.0
    p = p - p[:, 2:4].mean(1, keepdim=True)
    g = g - g[:, 2:4].mean(1, keepdim=True)
    return {"MPJPE": M.mpjpe(p, g).numpy(), "PA-MPJPE": M.pa_mpjpe(p, g).numpy()}


def stirling_metrics(pred_vertices, faces, pred_landmarks, scans, scan_landmarks) -> dict[str, np.ndarray]:
    """Stirling/ESRC "3DRMSE" per sample (mm): predictions in metres are taken to mm first."""
    out = []
    for i in range(len(pred_vertices)):
        out.append(M.stirling_3drmse(scans[i], scan_landmarks[i], np.asarray(pred_vertices[i]) * 1000.0, faces,
                                     np.asarray(pred_landmarks[i]) * 1000.0).item())
    return {"3DRMSE": np.asarray(out)}
