"""SMPL-X, MANO, FLAME and SMPL as batched ``smplx`` layer modules, built from safely loaded files.

The layers take ROTATION MATRICES (``global_orient`` [B, 1, 3, 3], ``body_pose`` [B, J, 3, 3], ...),
metres in, metres out. ExPose's SMPL-X: 10 betas, 10 expression coefficients, flat hand mean, no
PCA, face contour on (144 keypoints: 55 joints, 21 extra vertex joints, 51 + 17 face landmarks).

``smplx``'s SMPL-X and FLAME constructors read their files themselves (with ``pickle``). We load
every file through the restricted loader first and give ``smplx`` only pickle-free copies.
"""

from __future__ import annotations

import functools
import pickle
import tempfile
from pathlib import Path

import numpy as np
import smplx
import torch
from smplx.utils import Struct

from expose_cli.body_models.auxiliary import (
    load_flame_dynamic_embedding,
    load_flame_static_embedding,
)
from expose_cli.body_models.loading import (
    load_body_model_data,
    npz_is_clean,
    validate_body_model,
    write_clean_npz,
)
from expose_cli.errors import MissingFileError
from expose_cli.io.paths import DataTree

SMPLX_SITE = "https://smpl-x.is.tue.mpg.de (SMPL-X v1.1), then `expose import-body-models FILE.zip`"
MANO_SITE = "https://mano.is.tue.mpg.de (MANO v1.2), then `expose import-body-models FILE.zip`"
FLAME_SITE = "https://flame.is.tue.mpg.de (FLAME 2019), then `expose import-body-models FILE.zip`"
SMPL_SITE = "https://smpl.is.tue.mpg.de (SMPL v1.0), then `expose import-body-models FILE.zip`"


@functools.cache
def _ten_component_class(base: type) -> type:
    """``base`` with a 10-component shape (and expression) space: see :func:`_layer_class`."""
    space = {"SHAPE_SPACE_DIM": 10}
    if hasattr(base, "EXPRESSION_SPACE_DIM"):
        space["EXPRESSION_SPACE_DIM"] = 10
    return type(base.__name__, (base,), {**space, "__module__": __name__, "__doc__": base.__doc__})


def _layer_class(base: type, shapedirs: np.ndarray) -> type:
    """The smplx layer class to build a model file with ``shapedirs`` [V, 3, C] from.

    When C is less than the class's full space (300 shape + 100 expression components), smplx's
    constructor prints a WARNING line to stdout (MANO v1.2 and SMPL v1.0 have 10 shape components;
    SMPL-X v1.0 10 + 10) and then uses the first 10 shape and the next 10 expression components.
    A subclass whose space is those 10 (+ 10) takes smplx's other branch, which keeps the same
    components, and prints nothing: stdout stays for results (``--json``) without redirecting the
    process-wide ``sys.stdout``. (A file with fewer than 10 components, or 20 for SMPL-X and FLAME,
    still makes smplx print.)
    """
    full = base.SHAPE_SPACE_DIM + getattr(base, "EXPRESSION_SPACE_DIM", 0)
    return base if shapedirs.shape[-1] >= full else _ten_component_class(base)


def _resolve(source: DataTree | str | Path, candidates: list[Path], what: str, site: str) -> Path:
    for path in candidates:
        if path.is_file():
            return path
    if len(candidates) > 1:  # name every file that would do
        what = f"{what}, as {' or '.join(p.name for p in candidates)},"
    raise MissingFileError(candidates[0], what, f"download it from {site}")


def _candidates(source: DataTree | str | Path, tree_file, stem: str) -> list[Path]:
    """Files to try, ``.npz`` first: the data tree's (``tree_file(tree, ext)``), a folder's ``STEM.ext``,
    or a file as given."""
    if isinstance(source, DataTree):
        return [tree_file(source, "npz"), tree_file(source, "pkl")]
    if Path(source).is_dir():
        return [Path(source) / f"{stem}.{e}" for e in ("npz", "pkl")]
    return [Path(source)]


_TREE_FILES = {
    "smplx": (DataTree.smplx_model, "SMPLX"),
    "mano": (DataTree.mano_model, "MANO"),
    "flame": (DataTree.flame_model, "FLAME"),
    "smpl": (DataTree.smpl_model, "SMPL"),
}


def model_candidates(source: DataTree | str | Path, kind: str, variant: str) -> list[Path]:
    """The files the builder of ``kind`` (``smplx``, ``mano``, ``flame``, ``smpl``) tries, in order,
    for ``variant`` (a gender, or a MANO side): ``.npz`` first, then ``.pkl``. `expose doctor`
    checks the same list."""
    tree_file, prefix = _TREE_FILES[kind]
    return _candidates(source, lambda t, e: tree_file(t, variant, e), f"{prefix}_{variant.upper()}")


def flame_file(source: DataTree | str | Path) -> Path:
    """The FLAME model file to use: ``FLAME_NEUTRAL.npz`` (else ``.pkl``), or a file path as given."""
    return _resolve(source, model_candidates(source, "flame", "neutral"), "FLAME model", FLAME_SITE)


def smplx_file(source: DataTree | str | Path, gender: str = "neutral") -> Path:
    """The SMPL-X file to use: a file path as given, or ``SMPLX_<GENDER>.npz`` (else ``.pkl``)."""
    cands = model_candidates(source, "smplx", gender)
    return _resolve(source, cands, f"SMPL-X model ({gender})", SMPLX_SITE)


def build_smplx(
    source: DataTree | str | Path,
    gender: str = "neutral",
    num_betas: int = 10,
    num_expression: int = 10,
    use_face_contour: bool = True,
    flat_hand_mean: bool = True,
    dtype: torch.dtype = torch.float32,
) -> smplx.SMPLXLayer:
    """SMPL-X layer (rotation-matrix inputs) from a data tree, a folder or a model file."""
    path = smplx_file(source, gender)
    kwargs = dict(
        num_betas=num_betas,
        num_expression_coeffs=num_expression,
        use_face_contour=use_face_contour,
        flat_hand_mean=flat_hand_mean,
        use_pca=False,
        gender=gender,
        dtype=dtype,
        ext="npz",
    )
    data = load_body_model_data(path)
    validate_body_model(data, "smplx", path)
    layer = _layer_class(smplx.SMPLXLayer, data["shapedirs"])
    if path.suffix == ".npz" and npz_is_clean(path):
        return layer(model_path=str(path), **kwargs)
    with tempfile.TemporaryDirectory(prefix="expose_smplx_") as tmp:
        clean = Path(tmp) / "model.npz"
        write_clean_npz(data, clean)
        return layer(model_path=str(clean), **kwargs)


def mirror_mano_data(right: dict) -> dict:
    """A left-hand MANO model as the mirror image of the right one through the plane x = 0.

    Positions and shape blend shapes flip their x component, pose blend shapes also the sign of
    their rotation-entry features; faces reverse their winding so normals stay outward; axis-angle
    hand poses mirror as ``(x, -y, -z)``.
    """
    left = dict(right)
    flip = np.array([-1.0, 1.0, 1.0])
    left["v_template"] = right["v_template"] * flip
    if "J" in right:
        left["J"] = right["J"] * flip
    left["shapedirs"] = right["shapedirs"] * flip[None, :, None]
    # Pose features are the entries (R - I)_il of each joint rotation; mirroring R -> F R F with
    # F = diag(-1, 1, 1) multiplies entry (i, l) by f_i f_l.
    entry_sign = np.outer(flip, flip).reshape(-1)
    n_feat = right["posedirs"].shape[-1]
    left["posedirs"] = right["posedirs"] * flip[None, :, None] * np.tile(entry_sign, n_feat // 9)[None, None, :]
    left["f"] = right["f"][:, ::-1].copy()
    mirror_pose = np.tile(np.array([1.0, -1.0, -1.0]), 15)
    if "hands_mean" in right:
        left["hands_mean"] = right["hands_mean"] * mirror_pose
    if "hands_components" in right:
        left["hands_components"] = right["hands_components"] * mirror_pose[None, :]
    return left


def fix_mano_left_shapedirs(left: dict, right: dict) -> dict:
    """Fix the known bug of the official ``MANO_LEFT.pkl``: the x component of its ``shapedirs``
    has the sign of the right hand's instead of the mirrored one.

    Detected as Hand4Whole and others do: when ``sum |left.shapedirs[:, 0] - right.shapedirs[:, 0]|
    < 1`` the x components are (nearly) equal, so the left one is negated. A correct left model
    (x components opposite) is returned unchanged.
    """
    ls, rs = np.asarray(left["shapedirs"]), np.asarray(right["shapedirs"])
    n = min(ls.shape[-1], rs.shape[-1])
    if ls.shape[:2] != rs.shape[:2] or not np.abs(ls[:, 0, :n] - rs[:, 0, :n]).sum() < 1:
        return left
    fixed = dict(left)
    shapedirs = np.array(ls, copy=True)
    shapedirs[:, 0, :] *= -1
    fixed["shapedirs"] = shapedirs
    return fixed


def build_mano(
    source: DataTree | str | Path,
    side: str = "right",
    num_betas: int = 10,
    flat_hand_mean: bool = True,
    dtype: torch.dtype = torch.float32,
) -> smplx.MANOLayer:
    """MANO layer for ``side``. The left hand comes from ``MANO_LEFT.pkl`` when present (with the
    official file's ``shapedirs`` sign bug fixed when the right model is there to compare, see
    :func:`fix_mano_left_shapedirs`), otherwise by mirroring the right model
    (:func:`mirror_mano_data`)."""
    own = model_candidates(source, "mano", side)
    right = model_candidates(source, "mano", "right")
    path = next((p for p in own if p.is_file()), None)
    if path is not None:
        data = load_body_model_data(path)
        validate_body_model(data, "mano", path)
        right_path = next((p for p in right if p.is_file()), None)
        if side == "left" and right_path is not None:
            right_data = load_body_model_data(right_path)
            validate_body_model(right_data, "mano", right_path)
            data = fix_mano_left_shapedirs(data, right_data)
    else:
        path = _resolve(source, right, "MANO model (right)", MANO_SITE)
        data = load_body_model_data(path)
        validate_body_model(data, "mano", path)
        if side == "left":
            data = mirror_mano_data(data)
    return _layer_class(smplx.MANOLayer, data["shapedirs"])(
        model_path=str(path),
        data_struct=Struct(**data),
        is_rhand=side == "right",
        num_betas=num_betas,
        use_pca=False,
        flat_hand_mean=flat_hand_mean,
        dtype=dtype,
    )


def build_smpl(
    source: DataTree | str | Path,
    gender: str = "neutral",
    num_betas: int = 10,
    dtype: torch.dtype = torch.float32,
) -> smplx.SMPLLayer:
    """SMPL v1.0 layer of a gender (``neutral``, ``male``, ``female``)."""
    cands = model_candidates(source, "smpl", gender)
    path = _resolve(source, cands, f"SMPL model ({gender})", SMPL_SITE)
    data = load_body_model_data(path)
    validate_body_model(data, "smpl", path)
    return _layer_class(smplx.SMPLLayer, data["shapedirs"])(
        model_path=str(path), data_struct=Struct(**data), num_betas=num_betas, gender=gender, dtype=dtype
    )


def build_flame(
    source: DataTree | str | Path,
    num_betas: int = 100,
    num_expression: int = 50,
    use_face_contour: bool = True,
    dtype: torch.dtype = torch.float32,
) -> smplx.FLAMELayer:
    """FLAME 2019 layer with its landmark embeddings (``flame_static_embedding.pkl`` and, for the
    contour, ``flame_dynamic_embedding.npy``) from the data tree or a folder holding them."""
    if isinstance(source, DataTree):
        static, dynamic = source.flame_static_embedding, source.flame_dynamic_embedding
    else:
        folder = Path(source)
        static, dynamic = folder / "flame_static_embedding.pkl", folder / "flame_dynamic_embedding.npy"
    path = flame_file(source)
    if not static.is_file():
        raise MissingFileError(static, "FLAME static landmark embedding", "run `expose fetch-models`")
    if use_face_contour and not dynamic.is_file():
        raise MissingFileError(dynamic, "FLAME dynamic landmark embedding", "run `expose fetch-models`")
    data = load_body_model_data(path)
    validate_body_model(data, "flame", path)
    static_data = load_flame_static_embedding(static)
    with tempfile.TemporaryDirectory(prefix="expose_flame_") as tmp:
        write_clean_npz(data, Path(tmp) / "FLAME_NEUTRAL.npz")
        with open(Path(tmp) / "flame_static_embedding.pkl", "wb") as fh:
            pickle.dump({k: np.asarray(v) for k, v in static_data.items()}, fh)
        if use_face_contour:
            dyn = load_flame_dynamic_embedding(dynamic)
            np.save(Path(tmp) / "flame_dynamic_embedding.npy",
                    np.array({k: np.asarray(v) for k, v in dyn.items()}, dtype=object), allow_pickle=True)
        return _layer_class(smplx.FLAMELayer, data["shapedirs"])(
            model_path=tmp,
            num_betas=num_betas,
            num_expression_coeffs=num_expression,
            use_face_contour=use_face_contour,
            dtype=dtype,
            ext="npz",
        )
