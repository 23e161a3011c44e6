"""Synthetic stand-ins for the licensed body-model files and the seed's auxiliary files.

SMPL-X, MANO, FLAME and SMPL cannot be shipped. These stand-ins have the exact file names, keys,
dtypes and shapes of the official downloads (SMPL-X v1.1: 10475 vertices, 20908 faces, 55 joints,
300 + 100 shape/expression components; MANO v1.2: 778 / 1538 / 16; FLAME 2019: 5023 / 9976 / 5;
SMPL v1.0: 6890 / 13776 / 24) and a plausible, human-sized geometry: a skeleton in metres wrapped in
tubes, skinning weights and joint regressors whose rows sum to 1. Where a network must be able to
see what the parameters do (the learning test of `expose train`), they behave like the real
models: shape and expression directions are smooth displacement fields of a few mm to cm per unit
(:func:`smooth_directions`), and the face-contour tables pick neighbouring points for neighbouring
degrees of head yaw (:func:`contour_table`). Otherwise the shapes they produce are meaningless; they
exist so that every code path runs without the real files.

The ``.pkl`` files are written the way the official ones are: Python pickles whose arrays are
chumpy ``Ch`` objects and whose ``J_regressor`` is a scipy sparse matrix, produced here without
chumpy or scipy installed, so the restricted loader's chumpy path is exercised.

Everything is deterministic from ``seed``.
"""

from __future__ import annotations

import copyreg
import os
import pickle
import shutil
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from expose_cli.body_models.builders import mirror_mano_data
from expose_cli.io.paths import DataTree

# --- skeletons (rest pose, metres; +x is the subject's left, +y up, +z forward) -----------------

SMPLX_PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15]
    + [20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38]
    + [21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]
)
SMPL_PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])
MANO_PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])
FLAME_PARENTS = np.array([-1, 0, 1, 1, 1])

_BODY_LEFT = {  # joint index -> position of the left side (right side mirrors x)
    1: (0.06, -0.09, 0.0), 4: (0.10, -0.47, 0.0), 7: (0.10, -0.87, -0.02), 10: (0.11, -0.93, 0.10),
    13: (0.07, 0.44, 0.0), 16: (0.18, 0.46, 0.0), 18: (0.43, 0.46, 0.0), 20: (0.68, 0.46, 0.0),
}
_CENTRE = {0: (0.0, 0.0, 0.0), 3: (0.0, 0.11, 0.0), 6: (0.0, 0.25, 0.0), 9: (0.0, 0.31, 0.0),
           12: (0.0, 0.52, 0.0), 15: (0.0, 0.63, 0.03), 22: (0.0, 0.60, 0.06)}
_RIGHT_OF = {1: 2, 4: 5, 7: 8, 10: 11, 13: 14, 16: 17, 18: 19, 20: 21}


def _hand_joints(wrist: np.ndarray, side: float) -> np.ndarray:
    """15 finger joints (index, middle, pinky, ring, thumb; 3 each) after a wrist, metres."""
    out = []
    for z, base in ((0.030, 0.09), (0.010, 0.095), (-0.035, 0.08), (-0.012, 0.09)):
        for k in range(3):
            out.append(wrist + np.array([side * (base + 0.03 * k), 0.0, z]))
    for k in range(3):
        out.append(wrist + np.array([side * (0.03 + 0.025 * k), -0.02 - 0.01 * k, 0.045 + 0.01 * k]))
    return np.array(out)


def smplx_rest_joints() -> np.ndarray:
    """The 55 rest-pose joints of the stand-in SMPL-X skeleton, metres."""
    J = np.zeros((55, 3))
    for j, p in _CENTRE.items():
        J[j] = p
    for j, p in _BODY_LEFT.items():
        J[j] = p
        J[_RIGHT_OF[j]] = (-p[0], p[1], p[2])
    J[23] = (0.03, 0.68, 0.09)
    J[24] = (-0.03, 0.68, 0.09)
    J[25:40] = _hand_joints(J[20], 1.0)
    J[40:55] = _hand_joints(J[21], -1.0)
    return J


def _tube_mesh(joints, parents, budgets, n_vertices, n_faces, radii, rng, segments=8):
    """Tubes around bones (child joint -> its parent): vertices [n_vertices, 3], faces [n_faces, 3],
    and for each vertex the joint whose bone it belongs to."""
    verts, faces, owner = [], [], []
    for child, budget in budgets:
        parent = parents[child]
        a = joints[parent] if parent >= 0 else joints[child] - np.array([0, 0.05, 0])
        b = joints[child]
        rings = max(2, budget // segments)
        axis = b - a
        length = np.linalg.norm(axis) + 1e-9
        d = axis / length
        helper = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        u = np.cross(d, helper)
        u /= np.linalg.norm(u)
        v = np.cross(d, u)
        start = len(verts)
        for r in range(rings):
            t = (r + 0.5) / rings
            centre = a + axis * t
            for s in range(segments):
                ang = 2 * np.pi * s / segments
                radius = radii[child] * (1.0 + 0.05 * rng.standard_normal())
                verts.append(centre + radius * (np.cos(ang) * u + np.sin(ang) * v))
                owner.append(child if t > 0.5 or parent < 0 else parent)
        for r in range(rings - 1):
            for s in range(segments):
                i0 = start + r * segments + s
                i1 = start + r * segments + (s + 1) % segments
                faces.append((i0, i0 + segments, i1))
                faces.append((i1, i0 + segments, i1 + segments))
    verts, owner = np.array(verts), np.array(owner)
    if len(verts) > n_vertices:
        raise ValueError("vertex budget too large")
    extra = n_vertices - len(verts)
    if extra:  # remaining vertices sit at random joints (no faces)
        pick = rng.integers(0, len(joints), extra)
        verts = np.concatenate([verts, joints[pick] + 0.005 * rng.standard_normal((extra, 3))])
        owner = np.concatenate([owner, pick])
    faces = np.array(faces)
    reps = int(np.ceil(n_faces / len(faces)))
    faces = np.concatenate([faces] * reps)[:n_faces]
    return verts, faces, owner


def _skinning(verts, joints, owner, sharp=0.04):
    """Dense skinning weights [V, J] (rows sum to 1) and a joint regressor [J, V] (rows sum to 1)."""
    d2 = ((verts[:, None, :] - joints[None]) ** 2).sum(-1)
    logits = -d2 / (2 * sharp**2)
    logits[np.arange(len(verts)), owner] += 4.0
    w = np.exp(logits - logits.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    reg = np.exp(-(d2.T - d2.T.min(1, keepdims=True)) / (2 * 0.02**2))
    reg /= reg.sum(1, keepdims=True)
    return w, reg


def _kintree(parents: np.ndarray) -> np.ndarray:
    top = parents.copy().astype(np.int64)
    top[0] = 4294967295  # the official files store -1 as uint32 max
    return np.stack([top, np.arange(len(parents))]).astype(np.int64)


def _landmarks(rng, faces, face_pool, n):
    idx = rng.choice(face_pool, size=n)
    bary = rng.random((*np.shape(idx), 3)) + 0.1
    bary /= bary.sum(-1, keepdims=True)
    return idx.astype(np.int64), bary


def smooth_directions(points: np.ndarray, amplitudes: np.ndarray, length: float, rng: np.random.Generator,
                      waves: int = 3) -> np.ndarray:
    """Low-frequency displacement fields ``[V, 3, C]`` (metres per unit coefficient) over ``points``
    [V, 3] (m), one per entry of ``amplitudes`` (m, the largest displacement of that component), as the
    real models' PCA shape and expression directions are: each is a sum of ``waves`` plane waves of
    random direction with wavelengths of 1.5-4 x ``length`` (m), so neighbouring vertices move together."""
    n = len(amplitudes)
    direction = rng.standard_normal((n, waves, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    k = direction * (2 * np.pi / (length * rng.uniform(1.5, 4.0, (n, waves, 1))))
    phase = rng.uniform(0.0, 2 * np.pi, (n, waves))
    amp = rng.standard_normal((n, waves, 3))
    centred = points - points.mean(0)
    field = np.einsum("vnk,nkd->vdn", np.sin(np.einsum("vd,nkd->vnk", centred, k) + phase), amp)
    peak = np.linalg.norm(field, axis=1).max(0)
    return field * (np.asarray(amplitudes) / np.maximum(peak, 1e-12))


def decaying(first: float, count: int, half: float) -> np.ndarray:
    """Amplitudes ``first / (1 + c / half)`` for components c = 0..count-1 (m): PCA components
    explain less and less."""
    return first / (1.0 + np.arange(count) / half)


def contour_table(verts: np.ndarray, faces: np.ndarray, first: int, rings: int, segments: int = 8
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A dynamic face-contour table like FLAME's and SMPL-X's: for each of the 79 rows (head yaw of
    0..39 degrees, then -1..-39) the face ``[79, 17]`` and barycentrics ``[79, 17, 3]`` of 17 points
    on an arc around the head (ear, chin, ear: lower at the chin) that turns with the yaw. The head is
    the tube of :func:`_tube_mesh` whose ``rings`` rings of ``segments`` vertices start at vertex
    ``first``; each point lies on a ring's edge at the angle it is due, so neighbouring degrees pick
    the same or the neighbouring triangle and nearby barycentrics, as the real tables do."""
    ring_ids = first + np.arange(rings * segments).reshape(rings, segments)
    centre = verts[ring_ids].reshape(-1, 3).mean(0)
    edge_face = {}
    for f, tri in enumerate(faces):
        for i in range(3):
            edge_face.setdefault(frozenset((int(tri[i]), int(tri[(i + 1) % 3]))), f)
    yaw = np.concatenate([np.arange(40), -np.arange(1, 40)])  # row -> degrees
    arc = np.linspace(-80.0, 80.0, 17)
    idx, bary = np.zeros((79, 17), np.int64), np.zeros((79, 17, 3))
    for k, a in enumerate(arc):
        ring = ring_ids[int(rings * (0.6 - 0.25 * np.cos(np.radians(a))))]
        rel = verts[ring] - centre
        angles = np.degrees(np.arctan2(rel[:, 0], rel[:, 2]))  # about the vertical, 0 = facing +z
        for row, y in enumerate(yaw):
            theta = a + y
            gap = (theta - angles) % 360.0  # the segment that starts at or before theta
            s = int(np.argmin(gap))
            span = (angles[(s + 1) % segments] - angles[s]) % 360.0
            t = float(np.clip(gap[s] / span, 0.0, 1.0)) if span > 0 else 0.0
            i0, i1 = int(ring[s]), int(ring[(s + 1) % segments])
            f = edge_face[frozenset((i0, i1))]
            idx[row, k] = f
            bary[row, k, list(faces[f]).index(i0)] += 1.0 - t
            bary[row, k, list(faces[f]).index(i1)] += t
    return idx, bary


def standin_smplx_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays of a stand-in ``SMPLX_NEUTRAL.npz`` (v1.1 keys, shapes and dtypes; no object arrays)."""
    rng = np.random.default_rng(seed)
    J = smplx_rest_joints()
    radii = np.full(55, 0.05)
    radii[[1, 2, 4, 5]] = 0.07
    radii[[3, 6, 9]] = 0.13
    radii[[15, 12]] = 0.09
    radii[[22, 23, 24]] = 0.04
    radii[25:] = 0.009
    body = [j for j in range(1, 22) if j not in (15,)]
    budgets = [(15, 4200), (22, 480), (23, 240), (24, 240)]  # head: >= 5023 vertices with neck
    budgets += [(12, 800)]
    budgets += [(j, 48) for j in range(25, 40)] + [(20, 80)]
    budgets += [(j, 48) for j in range(40, 55)] + [(21, 80)]
    rest = 10475 - sum(b for _, b in budgets)
    body = [j for j in body if j not in (12, 20, 21)]
    budgets += [(j, (rest // len(body)) // 8 * 8) for j in body]
    verts, faces, owner = _tube_mesh(J, SMPLX_PARENTS, budgets, 10475, 20908, radii, rng)
    weights, reg = _skinning(verts, J, owner)
    head_faces = np.flatnonzero(np.isin(owner[faces[:, 0]], [15, 22, 23, 24]))
    lmk_idx, lmk_bary = _landmarks(rng, faces, head_faces, 51)
    dyn_idx, dyn_bary = contour_table(verts, faces, 0, budgets[0][1] // 8)  # the head: the first tube
    comps = np.linalg.qr(rng.standard_normal((45, 45)))[0]
    shapedirs = np.zeros((10475, 3, 400))
    shapedirs[:, :, :300] = smooth_directions(verts, decaying(0.03, 300, 3.0), 0.5, rng)
    shapedirs[:, :, 0] += 0.05 * (verts - verts.mean(0))  # beta 0: overall size
    t = np.clip((verts[:, 1] - J[12, 1]) / (J[15, 1] - J[12, 1]), 0.0, 1.0)
    head = t * t * (3.0 - 2.0 * t)  # expression: the head, fading out smoothly down the neck
    expression = smooth_directions(verts, decaying(0.012, 100, 5.0), 0.15, rng)
    shapedirs[:, :, 300:] = expression * head[:, None, None]
    return {
        "v_template": verts.astype(np.float64),
        "f": faces.astype(np.uint32),
        "J_regressor": reg.astype(np.float64),
        "kintree_table": _kintree(SMPLX_PARENTS),
        "weights": weights.astype(np.float64),
        "posedirs": (1e-3 * rng.standard_normal((10475, 3, 486))).astype(np.float64),
        "shapedirs": shapedirs.astype(np.float64),
        "hands_componentsl": comps.astype(np.float64),
        "hands_componentsr": comps[::-1].copy().astype(np.float64),
        "hands_meanl": (0.1 * rng.standard_normal(45)).astype(np.float64),
        "hands_meanr": (0.1 * rng.standard_normal(45)).astype(np.float64),
        "lmk_faces_idx": lmk_idx,
        "lmk_bary_coords": lmk_bary.astype(np.float64),
        "dynamic_lmk_faces_idx": dyn_idx,
        "dynamic_lmk_bary_coords": dyn_bary.astype(np.float64),
        "vt": rng.random((11313, 2)).astype(np.float64),
        "ft": faces.astype(np.uint32),
    }


def standin_mano_arrays(seed: int = 1) -> dict[str, np.ndarray]:
    """Arrays of a stand-in ``MANO_RIGHT.pkl`` (v1.2 keys; the pickle wraps some in chumpy)."""
    rng = np.random.default_rng(seed)
    wrist = np.zeros(3)
    J = np.concatenate([wrist[None], _hand_joints(wrist, -1.0)])  # right hand points to -x
    radii = np.full(16, 0.009)
    radii[0] = 0.03
    budgets = [(0, 160)] + [(j, 40) for j in range(1, 16)]
    verts, faces, owner = _tube_mesh(J, MANO_PARENTS, budgets, 778, 1538, radii, rng)
    weights, reg = _skinning(verts, J, owner, sharp=0.015)
    comps = np.linalg.qr(rng.standard_normal((45, 45)))[0]
    return {
        "v_template": verts,
        "f": faces.astype(np.uint32),
        "J_regressor": reg,
        "kintree_table": _kintree(MANO_PARENTS),
        "J": J,
        "weights": weights,
        "posedirs": 1e-3 * rng.standard_normal((778, 3, 135)),
        "shapedirs": smooth_directions(verts, decaying(0.006, 10, 3.0), 0.1, rng),
        "hands_components": comps,
        "hands_coeffs": rng.standard_normal((1554, 45)),
        "hands_mean": 0.1 * rng.standard_normal(45),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


#: The stand-in FLAME's skull: the tube of joint 1 and its vertex budget (it follows joint 0's 600).
FLAME_HEAD_TUBE = (1, 3600)


def standin_flame_arrays(seed: int = 2) -> dict[str, np.ndarray]:
    """Arrays of a stand-in FLAME 2019 ``generic_model.pkl`` (300 shape + 100 expression)."""
    rng = np.random.default_rng(seed)
    J = np.array([[0.0, 0.0, 0.0], [0.0, 0.08, 0.0], [0.0, 0.05, 0.05], [0.03, 0.12, 0.09], [-0.03, 0.12, 0.09]])
    radii = np.array([0.06, 0.09, 0.05, 0.02, 0.02])
    budgets = [(0, 600), FLAME_HEAD_TUBE, (2, 560), (3, 128), (4, 128)]
    verts, faces, owner = _tube_mesh(J, FLAME_PARENTS, budgets, 5023, 9976, radii, rng)
    weights, reg = _skinning(verts, J, owner)
    return {
        "v_template": verts,
        "f": faces.astype(np.uint32),
        "J_regressor": reg,
        "kintree_table": _kintree(FLAME_PARENTS),
        "J": J,
        "weights": weights,
        "posedirs": 1e-3 * rng.standard_normal((5023, 3, 36)),
        "shapedirs": np.concatenate([smooth_directions(verts, decaying(0.012, 300, 3.0), 0.2, rng),  # shape
                                     smooth_directions(verts, decaying(0.012, 100, 5.0), 0.15, rng)], -1),  # expression
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def standin_smpl_arrays(seed: int = 3) -> dict[str, np.ndarray]:
    """Arrays of a stand-in SMPL v1.0 ``basicModel_*_lbs_10_207_0_v1.0.0.pkl``."""
    rng = np.random.default_rng(seed)
    J = smplx_rest_joints()[:24].copy()
    J[22] = J[20] + np.array([0.09, 0, 0])
    J[23] = J[21] + np.array([-0.09, 0, 0])
    radii = np.full(24, 0.05)
    radii[[3, 6, 9]] = 0.13
    radii[15] = 0.09
    budgets = [(j, 280) for j in range(1, 24)]
    verts, faces, owner = _tube_mesh(J, SMPL_PARENTS, budgets, 6890, 13776, radii, rng)
    weights, reg = _skinning(verts, J, owner)
    return {
        "v_template": verts,
        "f": faces.astype(np.uint32),
        "J_regressor": reg,
        "kintree_table": _kintree(SMPL_PARENTS),
        "J": J,
        "weights": weights,
        "posedirs": 1e-3 * rng.standard_normal((6890, 3, 207)),
        "shapedirs": np.concatenate([0.05 * (verts - verts.mean(0))[..., None],  # beta 0: overall size
                                     smooth_directions(verts, decaying(0.03, 9, 3.0), 0.5, rng)], -1),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


# --- chumpy-style pickles without chumpy ------------------------------------------------------

@contextmanager
def _fake_pickle_modules():
    """Temporarily provide modules ``chumpy.ch`` and ``scipy.sparse.csc`` whose classes pickle
    under the official global names, so the written files look like the real downloads."""
    ch_mod = types.ModuleType("chumpy.ch")
    sp_mod = types.ModuleType("scipy.sparse.csc")

    class Ch:
        def __init__(self, x):
            self.x = x

        def __reduce__(self):
            state = {"x": self.x, "_dirty_vars": set(), "_itr": None, "_parents": {}}
            return (copyreg._reconstructor, (Ch, object, None), state)

    class csc_matrix:  # noqa: N801 (the official class name)
        def __init__(self, dense):
            dense = np.asarray(dense)
            cols, rows = np.nonzero(dense.T)  # column-major order
            self.state = {
                "data": dense[rows, cols],
                "indices": rows.astype(np.int32),
                "indptr": np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=dense.shape[1]))]).astype(np.int32),
                "_shape": dense.shape,
                "maxprint": 50,
            }

        def __reduce__(self):
            return (copyreg._reconstructor, (csc_matrix, object, None), self.state)

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    csc_matrix.__module__, csc_matrix.__qualname__ = "scipy.sparse.csc", "csc_matrix"
    ch_mod.Ch, sp_mod.csc_matrix = Ch, csc_matrix
    fake = {"chumpy": types.ModuleType("chumpy"), "chumpy.ch": ch_mod, "scipy.sparse.csc": sp_mod}
    for parent in ("scipy", "scipy.sparse"):
        try:
            __import__(parent)
        except ImportError:
            fake[parent] = types.ModuleType(parent)
    saved = {k: sys.modules.get(k) for k in fake}
    sys.modules.update(fake)
    try:
        yield Ch, csc_matrix
    finally:
        for key, mod in saved.items():
            if mod is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = mod


CHUMPY_KEYS = ("v_template", "shapedirs", "posedirs", "J", "weights")


def write_chumpy_pickle(path: Path, arrays: dict, chumpy_keys=CHUMPY_KEYS, sparse_keys=("J_regressor",)) -> None:
    """Write ``arrays`` as an official-style pickle: ``chumpy_keys`` wrapped in chumpy ``Ch``,
    ``sparse_keys`` as scipy ``csc_matrix`` (protocol 2, as the Python-2 era files)."""
    with _fake_pickle_modules() as (Ch, csc_matrix):
        obj = {}
        for key, value in arrays.items():
            if key in chumpy_keys:
                obj[key] = Ch(value)
            elif key in sparse_keys:
                obj[key] = csc_matrix(value)
            else:
                obj[key] = value
        data = pickle.dumps(obj, protocol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# --- auxiliary files ------------------------------------------------------------------------

def standin_all_means(seed: int = 4) -> dict:
    """Stand-in ``all_means.pkl``: per SMPL-X parameter group, the mean as 6D rotations
    (``cont_rot_repr``) and as axis-angle (``aa``)."""
    from expose_cli.geometry.rotations import axis_angle_to_matrix, matrix_to_rot6d

    rng = np.random.default_rng(seed)
    groups = {"global_orient": 1, "body_pose": 21, "left_hand_pose": 15, "right_hand_pose": 15,
              "jaw_pose": 1}
    out = {}
    for name, n in groups.items():
        aa = 0.1 * rng.standard_normal((n, 3))
        if name in ("global_orient", "jaw_pose"):
            aa[:] = 0.0
        six = matrix_to_rot6d(axis_angle_to_matrix(aa)).numpy()
        out[name] = {"aa": aa.reshape(-1).astype(np.float32), "cont_rot_repr": six.reshape(-1).astype(np.float32)}
    out["betas"] = {"aa": np.zeros(10, np.float32), "cont_rot_repr": np.zeros(10, np.float32)}
    out["expression"] = {"aa": np.zeros(10, np.float32), "cont_rot_repr": np.zeros(10, np.float32)}
    return out


def write_standin_aux_files(tree: DataTree, smplx: dict, smpl: dict | None = None, seed: int = 5,
                            flame: dict | None = None) -> None:
    """Write every auxiliary file of the seed into ``tree`` (the FLAME landmark embeddings on ``flame``,
    by default :func:`standin_flame_arrays`)."""
    rng = np.random.default_rng(seed)
    tree.smplx_dir.mkdir(parents=True, exist_ok=True)
    tree.flame_dir.mkdir(parents=True, exist_ok=True)
    means = standin_all_means()
    for path in (tree.all_means, tree.all_means_root_copy):
        path.write_bytes(pickle.dumps(means, protocol=2))
    np.save(tree.shape_mean, (0.1 * rng.standard_normal(300)).astype(np.float32))
    # SMPLX_to_J14: rows sum to 1 over a few vertices near each LSP joint.
    j14_src = [8, 5, 2, 1, 4, 7, 21, 19, 17, 16, 18, 20, 12, 15]
    verts = smplx["v_template"]
    J = smplx["J_regressor"] @ verts
    reg = np.zeros((14, 10475))
    for row, j in enumerate(j14_src):
        near = np.argsort(((verts - J[j]) ** 2).sum(1))[:8]
        reg[row, near] = 1.0 / 8
    np.save(tree.smplx_to_j14, reg.astype(np.float32))
    smpl = smpl if smpl is not None else standin_smpl_arrays()
    reg17 = np.zeros((17, 6890))
    for row in range(17):
        near = np.argsort(((smpl["v_template"] - smpl["J"][row]) ** 2).sum(1))[:6]
        reg17[row, near] = 1.0 / 6
    np.save(tree.j_regressor_h36m, reg17.astype(np.float32))
    head = _region_vertices(smplx, [15, 22, 23, 24, 12], 5023)
    left = _region_vertices(smplx, [20] + list(range(25, 40)), 778)
    right = _region_vertices(smplx, [21] + list(range(40, 55)), 778)
    with open(tree.mano_smplx_vertex_ids, "wb") as fh:
        pickle.dump({"left_hand": left, "right_hand": right}, fh, protocol=2)
    np.save(tree.smplx_flame_vertex_ids, head)
    flame_faces = 9976
    static = {"lmk_face_idx": rng.integers(0, flame_faces, 51).astype(np.uint32),
              "lmk_b_coords": _bary(rng, (51,))}
    with open(tree.flame_static_embedding, "wb") as fh:
        pickle.dump(static, fh, protocol=2)
    flame = flame if flame is not None else standin_flame_arrays()
    idx, bary = contour_table(flame["v_template"], flame["f"].astype(np.int64), 600, FLAME_HEAD_TUBE[1] // 8)
    dynamic = {"lmk_face_idx": idx, "lmk_b_coords": bary}
    np.save(tree.flame_dynamic_embedding, np.array(dynamic, dtype=object), allow_pickle=True)


def _bary(rng, shape):
    b = rng.random((*shape, 3)) + 0.1
    return b / b.sum(-1, keepdims=True)


def _region_vertices(smplx: dict, joints: list[int], n: int) -> np.ndarray:
    """The ``n`` vertices most weighted to ``joints`` (sorted ids)."""
    score = smplx["weights"][:, joints].sum(1)
    return np.sort(np.argsort(-score, kind="stable")[:n]).astype(np.int64)


# --- the whole tree ---------------------------------------------------------------------------

def write_standin_data_tree(root: str | Path, seed: int = 0) -> DataTree:
    """Write every stand-in body-model file and auxiliary file into a data tree at ``root``.

    SMPL-X: ``SMPLX_{NEUTRAL,MALE,FEMALE}.npz`` (as `import-body-models` leaves them);
    MANO: ``MANO_RIGHT.pkl``, ``MANO_LEFT.pkl``; FLAME: ``FLAME_NEUTRAL.pkl``; SMPL:
    ``SMPL_{NEUTRAL,MALE,FEMALE}.pkl`` (chumpy-style pickles); the seed's auxiliary files.
    """
    tree = DataTree(root)
    smplx = standin_smplx_arrays(seed)
    tree.smplx_dir.mkdir(parents=True, exist_ok=True)
    np.savez(tree.smplx_model("neutral", "npz"), **smplx)
    for gender in ("male", "female"):
        _link_or_copy(tree.smplx_model("neutral", "npz"), tree.smplx_model(gender, "npz"))
    mano = standin_mano_arrays(seed + 1)
    write_chumpy_pickle(tree.mano_model("right"), mano)
    write_chumpy_pickle(tree.mano_model("left"), mirror_mano_data(mano))
    flame = standin_flame_arrays(seed + 2)
    write_chumpy_pickle(tree.flame_model("neutral"), flame)
    smpl = standin_smpl_arrays(seed + 3)
    write_chumpy_pickle(tree.smpl_model("neutral"), smpl)
    for gender in ("male", "female"):
        _link_or_copy(tree.smpl_model("neutral"), tree.smpl_model(gender))
    write_standin_aux_files(tree, smplx, smpl, flame=flame)
    tree.pretrained_models.mkdir(parents=True, exist_ok=True)
    return tree


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def standin_gmm_arrays(components: int = 8, seed: int = 6, dim: int = 69) -> dict[str, np.ndarray]:
    """A stand-in for SMPLify's ``gmm_08.pkl`` (same keys, shapes and dtype: ``means [M, 69]``,
    ``covars [M, 69, 69]`` positive definite, ``weights [M]`` summing to 1); random, not SMPLify's."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 0.2, (components, dim))
    basis = rng.normal(0.0, 0.1, (components, dim, dim))
    covars = basis @ basis.transpose(0, 2, 1) / dim + np.eye(dim) * rng.uniform(0.01, 0.05, (components, 1, 1))
    weights = rng.uniform(0.5, 1.5, components)
    return {"means": means, "covars": covars, "weights": weights / weights.sum()}


def write_standin_gmm(path: Path, arrays: dict | None = None) -> Path:
    """Pickle ``arrays`` (default :func:`standin_gmm_arrays`) as SMPLify ships its prior: a dict of
    numpy arrays, pickle protocol 2."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(arrays if arrays is not None else standin_gmm_arrays(), protocol=2))
    return path
