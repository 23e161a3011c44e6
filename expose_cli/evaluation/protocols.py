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

#: EHF's rows in MMHuman3D's protocol, in the order printed (the seed's published numbers are of
#: these; expose_cli/evaluation/benchmark.py holds them).
EHF_ROWS = ("BODY PA-MPJPE", "RIGHT_HAND PA-MPJPE", "LEFT_HAND PA-MPJPE", "PA-PVE", "RIGHT_HAND PA-PVE",
            "LEFT_HAND PA-PVE", "FACE PA-PVE")
#: Units of the rows that are not millimetres.
UNITS = {"FH-F@5mm": "fraction", "FH-F@15mm": "fraction"}

#: The protocols a row can follow (the JSON's ``protocol`` of each row). The rows named without a
#: prefix follow MMHuman3D's, the protocol behind the seed's published numbers; a prefix names
#: another protocol, reported beside them (docs/eval.md says which papers use which).
PROTOCOLS = {
    "mmhuman3d": "MMHuman3D (the seed's published numbers)",
    "hand4whole": "Hand4Whole EHF.evaluate (later whole-body papers)",
    "gendered": "3DPW ground truth from the gendered SMPL (HMR / SPIN / VIBE, most body papers)",
    "freihand": "FreiHAND challenge: the official evaluation_verts.json, FreiHAND's eval.py",
}
#: Row-name prefix -> protocol.
PREFIXES = {"H4W ": "hand4whole", "G-": "gendered", "FH-": "freihand"}


def unit(metric: str) -> str:
    return UNITS.get(metric, "mm")


def row_protocol(metric: str) -> str:
    """The protocol a row follows, from its name's prefix (:data:`PREFIXES`; none: MMHuman3D's)."""
    return next((name for prefix, name in PREFIXES.items() if metric.startswith(prefix)), "mmhuman3d")


def ehf_joints(vertices: torch.Tensor, j_regressor: torch.Tensor) -> torch.Tensor:
    """The 76 EHF evaluation joints: SMPL-X ``J_regressor`` on the vertices + 21 extra vertices."""
    v = torch.as_tensor(vertices, dtype=torch.float64)
    joints = torch.einsum("jv,bvc->bjc", torch.as_tensor(j_regressor, dtype=torch.float64), v)
    return torch.cat([joints, v[:, torch.as_tensor(EHF_EXTRA_VERTICES)]], dim=1)


def _extra(vertex: int) -> int:
    """Index, in the 76 EHF joints, of the extra joint at SMPL-X ``vertex``."""
    return 55 + int(np.flatnonzero(EHF_EXTRA_VERTICES == vertex)[0])


#: Hand4Whole's hand joints (``smpl_x.orig_hand_regressor``): the wrist, then per finger (thumb,
#: index, middle, ring, pinky) its 3 ``J_regressor`` joints and its fingertip vertex.
H4W_LEFT_HAND = np.array([20, 37, 38, 39, _extra(5361), 25, 26, 27, _extra(4933), 28, 29, 30, _extra(5058),
                          34, 35, 36, _extra(5169), 31, 32, 33, _extra(5286)])
H4W_RIGHT_HAND = np.array([21, 52, 53, 54, _extra(8079), 40, 41, 42, _extra(7669), 43, 44, 45, _extra(7794),
                           49, 50, 51, _extra(7905), 46, 47, 48, _extra(8022)])
#: Hand4Whole's roots (``smpl_x.J_regressor_idx``) among the SMPL-X ``J_regressor`` joints.
H4W_PELVIS, H4W_LWRIST, H4W_RWRIST, H4W_NECK = 0, 20, 21, 12
#: The Hand4Whole rows, in the order its ``print_eval_result`` prints them.
H4W_ROWS = ("H4W PA-PVE", "H4W HANDS PA-PVE", "H4W FACE PA-PVE", "H4W PVE", "H4W HANDS PVE", "H4W FACE PVE",
            "H4W BODY PA-MPJPE", "H4W HANDS PA-MPJPE")


def ehf_metrics(pred_vertices, gt_vertices, j_regressor, left_hand_ids, right_hand_ids, face_ids,
                j14_regressor=None) -> dict[str, np.ndarray]:
    """EHF as MMHuman3D reports it, each part aligned on its own (mm, per sample).

    Also, labelled ``H4W ...``, Hand4Whole's ``EHF.evaluate`` (``data/EHF/EHF.py``), the protocol of
    later papers. ``HANDS`` = mean of the left and right hand, each aligned on its own:

    - ``H4W PVE`` / ``HANDS PVE`` / ``FACE PVE``: the prediction translated so that its pelvis /
      wrist / neck (SMPL-X ``J_regressor`` joints 0 / 20, 21 / 12, regressed from each mesh) is on
      the ground truth's; no rotation or scale.
    - ``H4W PA-PVE`` / ``HANDS PA-PVE`` / ``FACE PA-PVE``: the part's vertices similarity-aligned
      on their own (all vertices: the same number as MMHuman3D's PA-PVE).
    - ``H4W BODY PA-MPJPE``: the 14 LSP joints of ``SMPLX_to_J14`` (``j14_regressor``), aligned.
    - ``H4W HANDS PA-MPJPE``: per hand the wrist, 15 finger joints and 5 fingertip vertices, aligned.
    """
    pv = torch.as_tensor(pred_vertices, dtype=torch.float64) * 1000.0
    gv = torch.as_tensor(gt_vertices, dtype=torch.float64) * 1000.0
    pj, gj = ehf_joints(pv, j_regressor), ehf_joints(gv, j_regressor)
    left, right = np.asarray(left_hand_ids), np.asarray(right_hand_ids)
    face = np.asarray(face_ids)
    out = {
        "BODY PA-MPJPE": M.part_pa_error(pj, gj, EHF_BODY),
        "RIGHT_HAND PA-MPJPE": M.part_pa_error(pj, gj, EHF_RIGHT_HAND),
        "LEFT_HAND PA-MPJPE": M.part_pa_error(pj, gj, EHF_LEFT_HAND),
        "PA-PVE": M.pa_pve(pv, gv),
        "RIGHT_HAND PA-PVE": M.part_pa_error(pv, gv, right),
        "LEFT_HAND PA-PVE": M.part_pa_error(pv, gv, left),
        "FACE PA-PVE": M.part_pa_error(pv, gv, face),
    }
    out["H4W PA-PVE"] = out["PA-PVE"]
    out["H4W HANDS PA-PVE"] = (out["LEFT_HAND PA-PVE"] + out["RIGHT_HAND PA-PVE"]) / 2
    out["H4W FACE PA-PVE"] = out["FACE PA-PVE"]
    out["H4W PVE"] = M.root_aligned_error(pv, gv, pj[:, H4W_PELVIS], gj[:, H4W_PELVIS])
    out["H4W HANDS PVE"] = (
        M.root_aligned_error(pv[:, left], gv[:, left], pj[:, H4W_LWRIST], gj[:, H4W_LWRIST])
        + M.root_aligned_error(pv[:, right], gv[:, right], pj[:, H4W_RWRIST], gj[:, H4W_RWRIST])) / 2
    out["H4W FACE PVE"] = M.root_aligned_error(pv[:, face], gv[:, face], pj[:, H4W_NECK], gj[:, H4W_NECK])
    if j14_regressor is not None:
        reg = torch.as_tensor(np.asarray(j14_regressor), dtype=torch.float64)
        out["H4W BODY PA-MPJPE"] = M.pa_mpjpe(torch.einsum("jv,bvc->bjc", reg, pv), torch.einsum("jv,bvc->bjc", reg, gv))
    out["H4W HANDS PA-MPJPE"] = (M.part_pa_error(pj, gj, H4W_LEFT_HAND) + M.part_pa_error(pj, gj, H4W_RIGHT_HAND)) / 2
    order = [*EHF_ROWS, *H4W_ROWS]
    return {k: out[k].numpy() for k in order if k in out}


def freihand_metrics(pred_joints, gt_joints, pred_vertices, gt_vertices, param_vertices=None) -> dict[str, np.ndarray]:
    """FreiHAND (mm; F-scores as fractions), two protocols.

    MMHuman3D's: ``PA-MPJPE`` on the 21 joints (root-relative) and ``PA-PVE`` on the 778 vertices of
    ``param_vertices``, the MANO mesh of the ground-truth parameters (:func:`mano_param_vertices`).
    The FreiHAND challenge's (``fh:eval.py``): ``FH-PA-PVE`` and the F-scores ``FH-F@5mm`` /
    ``FH-F@15mm`` on the official vertices ``gt_vertices`` (``evaluation_verts.json``). Without
    ``param_vertices`` only the FreiHAND rows of the vertices are given.
    """
    pj = torch.as_tensor(pred_joints, dtype=torch.float64) * 1000.0
    gj = torch.as_tensor(gt_joints, dtype=torch.float64) * 1000.0
    pj, gj = pj - pj[:, :1], gj - gj[:, :1]
    pv = torch.as_tensor(pred_vertices, dtype=torch.float64) * 1000.0
    gv = torch.as_tensor(gt_vertices, dtype=torch.float64) * 1000.0
    out = {"PA-MPJPE": M.pa_mpjpe(pj, gj).numpy()}
    if param_vertices is not None:
        out["PA-PVE"] = M.pa_pve(pv, torch.as_tensor(param_vertices, dtype=torch.float64) * 1000.0).numpy()
    from expose_cli.geometry.procrustes import similarity_procrustes

    aligned = similarity_procrustes(pv, gv)[0]
    out["FH-PA-PVE"] = M.mpjpe(aligned, gv).numpy()
    out["FH-F@5mm"] = M.f_score(aligned, gv, 5.0).numpy()
    out["FH-F@15mm"] = M.f_score(aligned, gv, 15.0).numpy()
    return out


def pw3d_metrics(pred_j14, gt_j14, gendered_j14=None) -> dict[str, np.ndarray]:
    """3DPW: MPJPE and PA-MPJPE (mm) on LSP-14 joints, both centred on the mean of the hips (2, 3).

    ``gt_j14``: MMHuman3D's ground truth (every subject's neutral SMPL); ``gendered_j14`` (optional):
    the gendered SMPL's, giving the ``G-MPJPE`` and ``G-PA-MPJPE`` rows.
    """
    p = torch.as_tensor(pred_j14, dtype=torch.float64) * 1000.0
    p = p - p[:, 2:4].mean(1, keepdim=True)
    out = {}
    for prefix, truth in (("", gt_j14), ("G-", gendered_j14)):
        if truth is None:
            continue
        g = torch.as_tensor(truth, dtype=torch.float64) * 1000.0
        g = g - g[:, 2:4].mean(1, keepdim=True)
        out[prefix + "MPJPE"] = M.mpjpe(p, g).numpy()
        out[prefix + "PA-MPJPE"] = M.pa_mpjpe(p, g).numpy()
    return out


def stirling_metrics(pred_vertices, faces, pred_landmarks, scans, scan_landmarks) -> dict[str, np.ndarray]:
    """Stirling/ESRC "3DRMSE" per sample (mm): predictions in metres are taken to mm first."""
    out = []
    for i in range(len(pred_vertices)):
        out.append(M.stirling_3drmse(scans[i], scan_landmarks[i], np.asarray(pred_vertices[i]) * 1000.0, faces,
                                     np.asarray(pred_landmarks[i]) * 1000.0).item())
    return {"3DRMSE": np.asarray(out)}
