"""A synthetic, learnable training set in the project's HDF5 schema (``expose synth``).

Random parameters in plausible ranges on the body models found in a data tree (the stand-ins in
tests), rendered with the CPU renderer (:mod:`expose_cli.inference.render`) from a known camera
(focal length ``FOCAL`` x image size px, principal point at the image centre) as a shaded mesh whose
parts have distinct colours (left and right differ, so a mirror image is not the same picture) on a
plain background. Each row has the image (a JPEG file under ``<out>/synth_<kind>/images/``, and
embedded with ``embed=True``), the box (1.2 x the projected mesh's box), 2D keypoints (px) and 3D
keypoints (m, camera frame) of the model's own keypoints in the ``smplx`` convention, and the
parameters with ``has_<model>``.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from expose_cli.body_models.builders import build_flame, build_mano, build_smplx
from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.data.hdf5 import HDF5Writer
from expose_cli.data.preprocess import embed_image
from expose_cli.geometry.rotations import axis_angle_to_matrix
from expose_cli.inference.render import render_shaded
from expose_cli.io.paths import DataTree
from expose_cli.kinds import KINDS
from expose_cli.models.expose import MANO_TIP_VERTICES

SYNTH_KINDS = ("body", "hand", "face")
FOCAL = 2.0  # focal length in units of the image side
FILL = 0.7  # fraction of the image the subject's nominal size spans
NOMINAL_SIZE = {"body": 1.7, "hand": 0.2, "face": 0.25}  # metres
#: 12 well separated colours (RGB, 0..1) for body parts / fingers.
PALETTE = np.array([
    [0.90, 0.10, 0.10], [0.10, 0.70, 0.10], [0.10, 0.30, 0.95], [0.95, 0.85, 0.10], [0.85, 0.10, 0.85],
    [0.10, 0.85, 0.85], [0.95, 0.55, 0.10], [0.55, 0.25, 0.05], [0.60, 0.60, 0.95], [0.30, 0.30, 0.30],
    [0.95, 0.95, 0.95], [0.50, 0.95, 0.50],
])
#: SMPL-X joint -> part colour: torso, head, and each limb segment of each side on its own colour.
_SMPLX_PART = {0: 9, 3: 9, 6: 9, 9: 9, 12: 10, 15: 10, 22: 10, 23: 10, 24: 10, 13: 0, 16: 0, 18: 3, 20: 6,
               14: 1, 17: 1, 19: 4, 21: 8, 1: 2, 4: 5, 7: 7, 10: 7, 2: 11, 5: 3, 8: 4, 11: 4}


def _joint_colours(kind: str, num_joints: int) -> np.ndarray:
    """``[J, 3]`` colour per skinning joint."""
    if kind == "body":
        out = np.zeros((num_joints, 3))
        for j in range(num_joints):
            if j < 25:
                out[j] = PALETTE[_SMPLX_PART[j]]
            else:  # fingers: left hand 25-39, right hand 40-54, one colour per finger
                finger = ((j - 25) % 15) // 3
                out[j] = PALETTE[(finger + (0 if j < 40 else 5)) % 12]
        return out
    return PALETTE[np.arange(num_joints) % len(PALETTE)]


def face_colours(kind: str, template: np.ndarray, weights: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``[F, 3]`` colours: each face takes its first vertex's dominant joint's colour; for the face
    model the subject's left half (x > 0) is a lighter shade, so a mirror image differs."""
    owner = np.argmax(weights, axis=1)
    colours = _joint_colours(kind, weights.shape[1])[owner]
    if kind == "face":
        colours = np.where((template[:, 0] > 0)[:, None], 0.5 + 0.5 * colours, colours)
    return colours[faces[:, 0]]


#: The pose family of ``pose_dims`` > 0: the parameters each kind's directions span, with the spread
#: (radians for rotations, coefficients for expression) of one direction's entries; the rest are zeros.
FAMILY_SPREAD = {"body": {"body_pose": 0.5, "left_hand_pose": 0.5, "right_hand_pose": 0.5},
                 "hand": {"right_hand_pose": 0.5},
                 "face": {"jaw_pose": 0.3, "expression": 1.0}}
FAMILY_SEED = 20201  # the family's directions depend only on (kind, pose_dims): train and held-out share them
_SHAPES = {"body_pose": (21, 3), "left_hand_pose": (15, 3), "right_hand_pose": (15, 3), "jaw_pose": (3,),
           "expression": (50,)}


def family_directions(kind: str, pose_dims: int) -> dict[str, np.ndarray]:
    """``pose_dims`` fixed directions per spanned parameter (``[pose_dims, *shape]``), the same for
    every seed; the jaw's direction only opens the mouth (x axis)."""
    rng = np.random.default_rng([FAMILY_SEED, SYNTH_KINDS.index(kind), pose_dims])
    out = {}
    for name, spread in FAMILY_SPREAD[kind].items():
        d = rng.normal(0.0, spread, (pose_dims, *_SHAPES[name]))
        if name == "jaw_pose":
            d[:, 1:] = 0.0
        out[name] = d
    return out


def family_params(kind: str, n: int, rng: np.random.Generator, pose_dims: int) -> dict[str, np.ndarray]:
    """Articulation ``sum_k c_k D_k`` with ``c_k ~ U(-1, 1)`` over :func:`family_directions`;
    shape (and the parameters the family does not span) zero."""
    coeffs = rng.uniform(-1.0, 1.0, (n, pose_dims))
    spanned = {name: np.tensordot(coeffs, d, axes=1) for name, d in family_directions(kind, pose_dims).items()}
    spec = KINDS[kind]
    names = [k for k in spec.params if k != "global_orient"]  # the kind's sample parameters but the orientation
    sizes = {"betas": (spec.num_betas,), "expression": (spec.num_expression,)}
    return {k: spanned[k] if k in spanned else np.zeros((n, *sizes.get(k, _SHAPES.get(k, ())))) for k in names}


def random_params(kind: str, n: int, rng: np.random.Generator, pose_dims: int = 0,
                  orient_range: float = 60.0, pitch: float = 0.0) -> dict[str, np.ndarray]:
    """Axis-angle (radians) and coefficients in plausible ranges; ``global_orient`` turns the
    y-up model to the y-down camera (180 degrees about x), then yaws within +-``orient_range``
    degrees and tilts by N(0, 0.15 rad x orient_range / 60), all after a turn of ``pitch`` degrees
    about x (90 shows the stand-in hand's palm: its fingers lie in the model's x-z plane). Shape and expression spreads are small
    for hands and faces (100 FLAME betas add up). ``pose_dims`` > 0: the articulation comes from
    the low-dimensional family of :func:`family_params` instead of independent joints."""
    yaw = rng.uniform(-1.0, 1.0, n) * math.radians(orient_range)
    tilt = rng.normal(0.0, 0.15 * orient_range / 60.0, (n, 2))
    go = np.stack([_compose_x_pi(yaw[i], tilt[i], math.radians(pitch)) for i in range(n)])
    if pose_dims > 0:
        return {"global_orient": go, **family_params(kind, n, rng, pose_dims)}
    if kind == "body":
        body = rng.normal(0.0, 0.25, (n, 21, 3))
        return {"global_orient": go, "body_pose": body, "jaw_pose": np.stack([rng.uniform(0, 0.3, n), np.zeros(n), np.zeros(n)], 1),
                "left_hand_pose": rng.normal(0, 0.3, (n, 15, 3)), "right_hand_pose": rng.normal(0, 0.3, (n, 15, 3)),
                "betas": rng.normal(0, 1.0, (n, 10)), "expression": rng.normal(0, 1.0, (n, 10))}
    if kind == "hand":
        return {"global_orient": go, "right_hand_pose": rng.normal(0, 0.3, (n, 15, 3)), "betas": rng.normal(0, 0.3, (n, 10))}
    return {"global_orient": go, "jaw_pose": np.stack([rng.uniform(0, 0.3, n), np.zeros(n), np.zeros(n)], 1),
            "betas": rng.normal(0, 0.15, (n, 100)), "expression": rng.normal(0, 0.3, (n, 50))}


def _compose_x_pi(yaw: float, tilt: np.ndarray, pitch: float = 0.0) -> np.ndarray:
    """Axis-angle of ``R_x(pi) R_x(pitch) R_y(yaw) R_small(tilt)`` (radians)."""
    rx = cv2.Rodrigues(np.array([math.pi, 0.0, 0.0]))[0] @ cv2.Rodrigues(np.array([pitch, 0.0, 0.0]))[0]
    ry = cv2.Rodrigues(np.array([0.0, yaw, 0.0]))[0]
    rt = cv2.Rodrigues(np.array([tilt[0], 0.0, tilt[1]]))[0]
    return cv2.Rodrigues(rx @ ry @ rt)[0].reshape(3)


def _mat(x: np.ndarray) -> torch.Tensor:
    return axis_angle_to_matrix(torch.as_tensor(x, dtype=torch.float32))


def pose_model(kind: str, model, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``[N, V, 3]`` and keypoints ``[N, K, 3]`` (m, model frame) in the ``smplx`` convention."""
    n = len(params["global_orient"])
    t = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in params.items()}
    with torch.no_grad():
        if kind == "body":
            out = model(global_orient=_mat(params["global_orient"])[:, None], body_pose=_mat(params["body_pose"]),
                        left_hand_pose=_mat(params["left_hand_pose"]), right_hand_pose=_mat(params["right_hand_pose"]),
                        jaw_pose=_mat(params["jaw_pose"])[:, None], betas=t["betas"], expression=t["expression"])
            return out.vertices.numpy(), out.joints.numpy()
        if kind == "hand":
            out = model(global_orient=_mat(params["global_orient"])[:, None], hand_pose=_mat(params["right_hand_pose"]),
                        betas=t["betas"])
            kps = torch.cat([out.joints[:, :16], out.vertices[:, MANO_TIP_VERTICES]], 1).numpy()
            return out.vertices.numpy(), convert_keypoints(kps, "mano", "smplx")[0]
        eye = torch.eye(3).expand(n, 1, 3, 3)
        out = model(global_orient=_mat(params["global_orient"])[:, None], neck_pose=eye, jaw_pose=_mat(params["jaw_pose"])[:, None],
                    leye_pose=eye, reye_pose=eye, betas=t["betas"], expression=t["expression"])
        return out.vertices.numpy(), convert_keypoints(out.joints.numpy(), "flame_73", "smplx")[0]


def build_model(kind: str, source: DataTree | str | Path):
    """The body model of ``kind`` from a data tree (or folder): SMPL-X, right MANO, or FLAME."""
    if kind == "body":
        return build_smplx(source)
    if kind == "hand":
        return build_mano(source, "right")
    return build_flame(source)


def _camera_translation(kind: str, verts: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A translation (m) that puts the subject's centre near the optical axis at a depth where its
    nominal size spans ``FILL`` of the image, with a little random offset."""
    depth = FOCAL * NOMINAL_SIZE[kind] / FILL * rng.uniform(0.9, 1.15)
    centre = 0.5 * (verts.min(0) + verts.max(0))
    offset = rng.uniform(-0.05, 0.05, 2) * NOMINAL_SIZE[kind]
    return np.array([-centre[0] + offset[0], -centre[1] + offset[1], depth - centre[2]])


def render_sample(kind: str, verts: np.ndarray, joints: np.ndarray, faces: np.ndarray, colours: np.ndarray,
                  size: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The RGB image and the HDF5 fields (box, keypoints) of one posed mesh (model frame, m)."""
    t = _camera_translation(kind, verts, size, rng)
    v, j = verts + t, joints + t
    focal = FOCAL * size
    background = np.full((size, size, 3), rng.integers(60, 200, 3), np.uint8)
    image = render_shaded(background, v, faces, focal, colours)
    project = lambda p: p[:, :2] / p[:, 2:3] * focal + size / 2.0  # noqa: E731
    px = project(v)
    lo, hi = px.min(0), px.max(0)
    side = 1.2 * (hi - lo)
    centre = 0.5 * (lo + hi)
    present = np.any(joints != 0, axis=1).astype(np.float32)
    kp2d = np.concatenate([project(j), present[:, None]], 1) * present[:, None]
    kp3d = np.concatenate([j, present[:, None]], 1) * present[:, None]
    fields = {"bbox_xywh": np.array([*(centre - side / 2), *side], np.float32), "image_size": np.array([size, size]),
              "keypoints2d": kp2d.astype(np.float32), "keypoints3d": kp3d.astype(np.float32),
              "camera/K": np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]], np.float32),
              "camera/R": np.eye(3, dtype=np.float32), "camera/T": t.astype(np.float32), "has_camera": True}
    return image, fields


def _param_fields(kind: str, params: dict[str, np.ndarray], i: int) -> dict:
    group = KINDS[kind].body_model
    out = {f"{group}/{k}": np.asarray(v[i], np.float32) for k, v in params.items()}
    out[f"has_{group}"] = True
    if KINDS[kind].model_variant == "right":  # a right hand (MANO's side)
        out["is_right"] = True
    return out


def write_synth(out_dir: str | Path, kind: str, count: int, models: DataTree | str | Path, seed: int = 0,
                size: int = 256, embed: bool = True, overwrite: bool = False, batch: int = 32,
                on_sample=None, pose_dims: int = 0, orient_range: float = 60.0, pitch: float = 0.0) -> Path:
    """Write ``count`` synthetic samples of ``kind`` (body, hand, face) as ``<out_dir>/synth_<kind>_train.h5``
    (images under ``<out_dir>/synth_<kind>/images/``; embedded too with ``embed``). Returns the path.

    ``models``: the data tree (or folder) with the body models. Deterministic from ``seed``.
    ``pose_dims`` > 0, ``orient_range`` and ``pitch`` (degrees): see :func:`random_params` (a family of few
    poses that a small network learns in a few hundred steps; the learning-proof test uses it).
    """
    if pose_dims < 0 or not 0.0 <= orient_range <= 180.0:
        raise ValueError(f"pose_dims must be >= 0 and orient_range in [0, 180], not {pose_dims}, {orient_range}")
    if kind not in SYNTH_KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(SYNTH_KINDS)}")
    out_dir = Path(out_dir)
    root = out_dir / f"synth_{kind}"
    (root / "images").mkdir(parents=True, exist_ok=True)
    model = build_model(kind, models)
    faces = np.unique(np.sort(model.faces.astype(np.int64), 1), axis=0, return_index=True)[1]
    faces = model.faces.astype(np.int64)[np.sort(faces)]  # the stand-ins repeat faces: draw each once
    colours = face_colours(kind, model.v_template.numpy(), model.lbs_weights.numpy(), faces)
    rng = np.random.default_rng(seed)
    writer = HDF5Writer(out_dir / f"synth_{kind}_train.h5", f"synth-{kind}", "train", root, "synth-1",
                        overwrite=overwrite, embed_images=embed)
    try:
        for start in range(0, count, batch):
            params = random_params(kind, min(batch, count - start), rng, pose_dims, orient_range, pitch)
            verts, joints = pose_model(kind, model, params)
            for i in range(len(verts)):
                image, fields = render_sample(kind, verts[i], joints[i], faces, colours, size, rng)
                name = f"images/{start + i:06d}.jpg"
                cv2.imwrite(str(root / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
                sample = {"image_path": name, **fields, **_param_fields(kind, params, i)}
                writer.append(embed_image(sample, root) if embed else sample)
                if on_sample is not None:
                    on_sample()
        return writer.close()
    except BaseException:
        writer.abort()
        raise
