"""One `expose fit` input: keypoints (+ start) -> batched fit -> infer-style files + losses.json.

Rows of one fit are the input's fittable persons x its frames. Outputs (docs/fit.md): under
``out/<input stem>/`` (a sequence: ``frame_NNNNNN/`` per frame) ``person_NN.{npz,json,obj,ply,glb}``
with the fields of `expose infer`'s person files, ``losses.json`` (each term per person, at the
start and after the fit) and, with ``render`` and an image, ``overlay.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from expose_cli.fitting.config import FitConfig
from expose_cli.fitting.inputs import KeypointInput, Start
from expose_cli.fitting.objective import Targets, evaluate, expand_betas, model_keypoints, sizes_for
from expose_cli.fitting.optimize import fit
from expose_cli.fitting.smpl import (
    SMPLJoints,
    smpl_points,
    smplx_start_to_smpl,
    smplx_to_smpl_points,
)
from expose_cli.geometry.procrustes import similarity_procrustes
from expose_cli.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from expose_cli.inference import export
from expose_cli.utils.atomic import write_json_atomic

PARTS = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose")


@dataclass
class FitOptions:
    out: Path
    formats: tuple[str, ...] = ("npz", "json")
    focal_length: float | None = None        # px; else the start's, else 5000
    image_size: tuple[int, int] | None = None  # height, width px; else the file's, else the start's
    render: bool = False
    camera_space: bool = False


@dataclass
class Camera:
    focal: float
    image_size: tuple[int, int]  # height, width

    @property
    def principal(self) -> tuple[float, float]:
        return self.image_size[1] / 2.0, self.image_size[0] / 2.0


def fittable(kin: KeypointInput, start: Start | None) -> tuple[list[int], list[str]]:
    """Persons with usable keypoints in some frame and a start in every frame; one line per other."""
    problems = list(kin.problems) + ([] if start is None else list(start.problems))
    keep = []
    for p in range(kin.persons):
        if not kin.valid[p].any():
            continue
        if start is not None and not start.present[p].all():
            continue
        keep.append(p)
    return keep, problems


def camera_for(kin: KeypointInput, start: Start | None, options: FitOptions) -> Camera | None:
    """The pinhole camera of 2D keypoints (principal point at the image centre, as `expose infer`)."""
    if not kin.is_2d:
        return None
    size = options.image_size or kin.image_size or (start.image_size if start is not None else None)
    if size is None:
        from expose_cli.errors import ExposeError, option

        raise ExposeError("2D keypoints without an image size", path=kin.path, exit_code=2,
                          hint=f"give {option('image-size')} HEIGHT,WIDTH (or start from the `expose infer` output of the image)")
    focal = options.focal_length or (start.focal_length if start is not None else None) or 5000.0
    return Camera(float(focal), (int(size[0]), int(size[1])))


def mean_start(model: nn.Module, targets: Targets, rows: int) -> dict[str, torch.Tensor]:
    """The mean pose placed on the keypoints: 2D upright facing the camera (pi about x) at the depth
    where its visible keypoints' spread matches; 3D the rigid alignment of its keypoints to them."""
    dtype, device = targets.keypoints.dtype, targets.keypoints.device
    params = {n: torch.zeros(rows, s, dtype=dtype, device=device) for n, s in sizes_for(model).items()}
    seen = targets.confidence > 0
    if targets.is_2d:
        params["global_orient"][:, 0] = torch.pi
        rest = model_keypoints(model, params)
        for b in range(rows):
            x3, uv = rest[b, seen[b]], targets.keypoints[b, seen[b]]
            spread3 = (x3[:, :2] - x3[:, :2].mean(0)).norm(dim=1).mean().clamp(min=1e-6)
            spread2 = (uv - uv.mean(0)).norm(dim=1).mean().clamp(min=1e-3)
            z = targets.focal[b] * spread3 / spread2
            xy = (uv.mean(0) - targets.principal[b]) * z / targets.focal[b] - x3[:, :2].mean(0)
            params["transl"][b] = torch.stack([xy[0], xy[1], z - x3[:, 2].mean()])
        return params
    rest = model_keypoints(model, params)
    for b in range(rows):
        src, tgt = rest[b, seen[b]].double(), targets.keypoints[b, seen[b]].double()
        _, _, rot, _ = similarity_procrustes(src[None], tgt[None])
        params["global_orient"][b] = matrix_to_axis_angle(rot[0]).to(dtype)
        root = rest[b, 0].double()  # the pelvis, which global_orient turns about
        params["transl"][b] = (tgt.mean(0) - (src.mean(0) - root) @ rot[0].T - root).to(dtype)
    return params


def build_targets(kin: KeypointInput, persons: list[int], camera: Camera | None, device, smpl: bool = False) -> Targets:
    """The rows (persons x frames, person-major) of the chosen persons; an invalid frame's points count 0.
    ``smpl``: SMPL's 24 joints (SMPL-X's first 22; SMPL's hand joints missing unless the input is an
    array in SMPL's own order) instead of the 144."""
    both = np.concatenate([kin.points[persons], kin.confidence[persons][..., None]], axis=-1)
    if smpl:
        own = smpl_points(kin)  # an array in SMPL's order keeps its hand joints
        both = smplx_to_smpl_points(both) if own is None else own[persons]
    points = torch.as_tensor(both[..., :-1], dtype=torch.float32, device=device)
    conf = torch.as_tensor(both[..., -1] * kin.valid[persons][..., None], dtype=torch.float32, device=device)
    count = points.shape[-2]
    rows = len(persons) * kin.frames
    kw = {}
    if camera is not None:
        kw = {"focal": torch.full((rows,), camera.focal, device=device),
              "principal": torch.tensor([camera.principal], device=device).expand(rows, 2),
              "image_size": torch.tensor([camera.image_size], dtype=torch.float32, device=device).expand(rows, 2)}
    return Targets(points.reshape(rows, count, -1), conf.reshape(rows, count), frames=kin.frames, **kw)


def _start_rows(start: Start, persons: list[int], frames: int, device) -> dict[str, torch.Tensor]:
    idx = np.array([p * frames + f for p in persons for f in range(frames)])
    return {n: torch.as_tensor(v[idx], dtype=torch.float32, device=device) for n, v in start.params.items()}


def _per_person(terms: dict[str, torch.Tensor], persons: list[int], frames: int) -> list[dict[str, float]]:
    return [{k: float(v.detach().reshape(len(persons), frames)[i].sum()) for k, v in terms.items()}
            for i in range(len(persons))]


def fit_input(model: nn.Module, layer: nn.Module, cfg: FitConfig, kin: KeypointInput, start: Start | None,
              options: FitOptions, on_step: Callable[[], None] | None = None, folder: Path | None = None,
              prior: nn.Module | None = None) -> dict:
    """Fit one input and write its files into ``folder`` (default ``out/<input stem>``); returns its
    record (persons fitted, problems, losses, files). The device is the keypoint model's; ``prior``
    the optional pose prior (``fit.pose_prior=gmm``)."""
    device = next(model.buffers()).device
    persons, problems = fittable(kin, start)
    camera = camera_for(kin, start, options)
    smpl = isinstance(model, SMPLJoints)
    record = {"input": str(kin.path), "image": str(kin.image) if kin.image is not None else None,
              "body_model": "smpl" if smpl else "smplx", "persons": persons,
              "frames": kin.frames, "problems": problems, "files": []}
    if not persons:
        return record
    targets = build_targets(kin, persons, camera, device, smpl)
    rows = len(persons) * kin.frames
    init = _start_rows(start, persons, kin.frames, device) if start is not None else mean_start(model, targets, rows)
    init = smplx_start_to_smpl(init) if smpl else init
    with torch.no_grad():
        before = evaluate(model, cfg, cfg.stages()[-1], init, targets, init, prior)
    params, after = fit(model, cfg, targets, init, len(persons), on_step, pull=start is not None, prior=prior)
    params["betas"] = expand_betas(params["betas"], rows)
    record["losses"] = [{"person": p, "initial": b, "final": a} for p, b, a in
                        zip(persons, _per_person(before, persons, kin.frames), _per_person(after, persons, kin.frames),
                            strict=True)]
    folder = folder or options.out / kin.path.stem
    record["files"] = write_fits(layer, params, kin, persons, camera, options, folder)
    write_json_atomic(folder / "losses.json", {k: record[k] for k in ("input", "body_model", "persons", "frames", "problems", "losses")}
                      | {"compat": cfg.compat})
    record["files"].append(str(folder / "losses.json"))
    return record


def mesh_arrays(layer: nn.Module, params: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """The SMPL-X layer's output for the fitted rows: rotation matrices per part, ``vertices`` and
    ``joints`` (body-model frame, metres), and the faces."""
    rows = params["global_orient"].shape[0]
    rot = {n: axis_angle_to_matrix(params[n].reshape(rows, -1, 3)) for n in PARTS if n in params}
    faces = np.asarray(layer.faces, dtype=np.int64)
    if "left_hand_pose" not in params:  # SMPL
        with torch.no_grad():
            out = layer(global_orient=rot["global_orient"], body_pose=rot["body_pose"], betas=params["betas"])
        return {"rot": rot, "vertices": out.vertices, "joints": out.joints}, faces
    with torch.no_grad():
        out = layer(global_orient=rot["global_orient"], body_pose=rot["body_pose"],
                    left_hand_pose=rot["left_hand_pose"], right_hand_pose=rot["right_hand_pose"],
                    jaw_pose=rot["jaw_pose"], betas=params["betas"], expression=params["expression"])
    return {"rot": rot, "vertices": out.vertices, "joints": out.joints}, faces


def person_arrays(params: dict[str, torch.Tensor], mesh: dict, faces: np.ndarray, row: int,
                  camera: Camera | None) -> dict[str, np.ndarray]:
    """One row's fields, named and shaped as `expose infer`'s person files (docs/infer.md)."""
    f32 = lambda t: t[row].detach().cpu().numpy().astype(np.float32)  # noqa: E731
    out = {}
    for name in mesh["rot"]:  # SMPL: global_orient and body_pose only
        out[f"{name}_rotmat"] = f32(mesh["rot"][name])
        out[f"{name}_aa"] = f32(params[name].reshape(params[name].shape[0], -1, 3))
    out["betas"] = f32(params["betas"])
    if "expression" in params:
        out["expression"] = f32(params["expression"])
    out["camera_translation"] = f32(params["transl"])
    joints = f32(mesh["joints"])
    if camera is not None:
        cam = joints + out["camera_translation"][None]
        uv = cam[:, :2] / np.maximum(cam[:, 2:3], 1e-6) * camera.focal + np.array(camera.principal, np.float32)
        out["focal_length"] = np.float32(camera.focal)
        out["image_size"] = np.array(camera.image_size, dtype=np.int32)
        out["keypoints2d"] = uv.astype(np.float32)
    out["joints3d"] = joints
    out["vertices"] = f32(mesh["vertices"])
    out["vertices_camera"] = out["vertices"] + out["camera_translation"][None]
    out["faces"] = faces
    return out


def write_fits(layer: nn.Module, params: dict[str, torch.Tensor], kin: KeypointInput, persons: list[int],
               camera: Camera | None, options: FitOptions, folder: Path) -> list[str]:
    """Every fitted person's files, and the overlay of the first frame's meshes (``render``)."""
    mesh, faces = mesh_arrays(layer, params)
    files, meshes = [], []
    for i, p in enumerate(persons):
        for f in range(kin.frames):
            arrays = person_arrays(params, mesh, faces, i * kin.frames + f, camera)
            where = folder if kin.frames == 1 else folder / f"frame_{f:06d}"
            files += export.write_person(where / f"person_{p:02d}", arrays, options.formats, options.camera_space)
            if f == 0:
                meshes.append((arrays["vertices_camera"], faces))
    if options.render and camera is not None and kin.image is not None:
        files.append(write_overlay(folder / "overlay.png", Path(kin.image), meshes, camera.focal))
    return files


def write_overlay(path: Path, image: Path, meshes: list, focal: float) -> str:
    """The meshes drawn over the image (PNG, atomic)."""
    from expose_cli.inference.render import render_overlay
    from expose_cli.io.images import read_image, write_image

    return str(write_image(path, render_overlay(read_image(image), meshes, focal)))
