"""Typed loaders for the seed's auxiliary body-model files (downloaded by `expose fetch-models`).

Each loader checks the file exists, reads it safely and checks its keys, shapes and index ranges,
raising an error that names the file and the command that provides it. The module-level
``load_*`` functions take a path (``expose doctor`` checks the files with them, see
:data:`LOADERS`); :class:`Auxiliary` applies them to a data tree and caches the results.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np

from expose_cli.errors import ExposeError, MissingFileError
from expose_cli.io.paths import DataTree
from expose_cli.io.safe_pickle import safe_load_npy, safe_load_pickle, to_numpy

FETCH_HINT = "run `expose fetch-models` (or copy the file there)"


def _load(path: Path) -> object:
    if not path.is_file():
        raise MissingFileError(path, "auxiliary file", FETCH_HINT)
    if path.suffix == ".pkl":
        return to_numpy(safe_load_pickle(path))
    return safe_load_npy(path)


def _bad(path: Path, message: str) -> ExposeError:
    return ExposeError(message, path=path, hint="the file is damaged or another file; " + FETCH_HINT)


def _check_shape(path: Path, array, shape: tuple, what: str = "an array") -> np.ndarray:
    """``array`` as a numeric numpy array of ``shape`` (``None``: any size)."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise _bad(path, f"expected {what} of numbers, found dtype {array.dtype}")
    ok = array.ndim == len(shape) and all(w is None or w == g for w, g in zip(shape, array.shape, strict=True))
    if not ok:
        want = "x".join("N" if s is None else str(s) for s in shape)
        raise _bad(path, f"expected {what} of shape {want}, found {array.shape}")
    return array


def _check_indices(path: Path, array: np.ndarray, upper: int, what: str) -> np.ndarray:
    """Integer-valued indices in ``[0, upper)`` as int64."""
    if array.size and (not np.all(np.isfinite(array)) or np.any(array != np.round(array))):
        raise _bad(path, f"{what}: expected integer indices")
    if array.size and (array.min() < 0 or array.max() >= upper):
        raise _bad(path, f"{what}: indices {int(array.min())}..{int(array.max())} outside 0..{upper - 1}")
    return array.astype(np.int64)


def _dict(path: Path, data, keys: tuple[str, ...], pickled: str = "a dict") -> dict:
    if not isinstance(data, dict) or not set(keys) <= set(data):
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise _bad(path, f"expected {pickled} with {', '.join(repr(k) for k in keys)}; found {found}")
    return data


SMPLX_VERTICES = 10475
SMPL_VERTICES = 6890
FLAME_FACES = 9976
#: The ``all_means.pkl`` groups ExPose reads (``cont_rot_repr`` = 6D) and their joint counts.
MEAN_GROUPS = {"body_pose": 21, "left_hand_pose": 15, "right_hand_pose": 15}


def load_all_means(path: Path) -> dict:
    """``all_means.pkl``: a dict of SMPL-X parameter groups, each a dict of parameterisations;
    ``body_pose``, ``left_hand_pose`` and ``right_hand_pose`` need a 6D mean (``cont_rot_repr``)."""
    data = _dict(path, _load(path), tuple(MEAN_GROUPS))
    for group, n in MEAN_GROUPS.items():
        entry = _dict(path, data[group], ("cont_rot_repr",), f"'{group}' to be a dict")
        _check_shape(path, np.asarray(entry["cont_rot_repr"]).reshape(-1), (n * 6,), f"'{group}/cont_rot_repr'")
    return data


def load_shape_mean(path: Path) -> np.ndarray:
    """``shape_mean.npy``: the mean SMPL-X betas, 1-D, at least 10 values (float32)."""
    arr = _check_shape(path, _load(path), (None,), "a 1-D array")
    if arr.size < 10:
        raise _bad(path, f"expected at least 10 values, found {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise _bad(path, "holds NaN or infinite values")
    return arr.astype(np.float32)


def load_smplx_to_j14(path: Path) -> np.ndarray:
    """``SMPLX_to_J14.npy``: [14, 10475] regressor from SMPL-X vertices to the LSP joints."""
    return _check_shape(path, _load(path), (14, SMPLX_VERTICES)).astype(np.float32)


def load_j_regressor_h36m(path: Path) -> np.ndarray:
    """``J_regressor_h36m.npy``: [17, 6890] regressor from SMPL vertices to the H3.6M joints."""
    return _check_shape(path, _load(path), (17, SMPL_VERTICES)).astype(np.float32)


def load_mano_smplx_vertex_ids(path: Path) -> dict[str, np.ndarray]:
    """``MANO_SMPLX_vertex_ids.pkl``: the 778 SMPL-X vertex ids of each hand."""
    data = _dict(path, _load(path), ("left_hand", "right_hand"))
    return {k: _check_indices(path, _check_shape(path, data[k], (778,), f"'{k}'"), SMPLX_VERTICES, k)
            for k in ("left_hand", "right_hand")}


def load_smplx_flame_vertex_ids(path: Path) -> np.ndarray:
    """``SMPL-X__FLAME_vertex_ids.npy``: the 5023 SMPL-X vertex ids of the FLAME head."""
    return _check_indices(path, _check_shape(path, _load(path), (5023,)), SMPLX_VERTICES, "vertex ids")


def _embedding(path: Path, data, shape: tuple[int, ...], pickled: str) -> dict[str, np.ndarray]:
    data = _dict(path, data, ("lmk_face_idx", "lmk_b_coords"), pickled)
    out = dict(data)
    out["lmk_face_idx"] = _check_indices(
        path, _check_shape(path, data["lmk_face_idx"], shape, "'lmk_face_idx'"), FLAME_FACES, "lmk_face_idx")
    out["lmk_b_coords"] = _check_shape(path, data["lmk_b_coords"], (*shape, 3), "'lmk_b_coords'")
    return out


def load_flame_static_embedding(path: Path) -> dict[str, np.ndarray]:
    """``flame_static_embedding.pkl``: 51 landmark faces (``lmk_face_idx``) and barycentrics
    (``lmk_b_coords`` [51, 3])."""
    return _embedding(path, _load(path), (51,), "a dict")


def load_flame_dynamic_embedding(path: Path) -> dict[str, np.ndarray]:
    """``flame_dynamic_embedding.npy``: contour landmarks per head yaw (``lmk_face_idx`` [79, 17],
    ``lmk_b_coords`` [79, 17, 3])."""
    return _embedding(path, _load(path), (79, 17), "a pickled dict")


#: The loader of each auxiliary file, by its name in the data tree.
LOADERS: dict[str, Callable[[Path], object]] = {
    "all_means.pkl": load_all_means,
    "shape_mean.npy": load_shape_mean,
    "SMPLX_to_J14.npy": load_smplx_to_j14,
    "J_regressor_h36m.npy": load_j_regressor_h36m,
    "MANO_SMPLX_vertex_ids.pkl": load_mano_smplx_vertex_ids,
    "SMPL-X__FLAME_vertex_ids.npy": load_smplx_flame_vertex_ids,
    "flame_static_embedding.pkl": load_flame_static_embedding,
    "flame_dynamic_embedding.npy": load_flame_dynamic_embedding,
}


class Auxiliary:
    """The auxiliary files of a data tree, loaded on first use and cached."""

    def __init__(self, tree: DataTree) -> None:
        self.tree = tree

    def all_means(self) -> dict[str, dict[str, np.ndarray]]:
        """``all_means.pkl``: per SMPL-X parameter group (``body_pose``, ``left_hand_pose``, ...),
        its mean in each parameterisation (``cont_rot_repr`` = 6D, ``aa`` = axis-angle, ...)."""
        return self._all_means

    @cached_property
    def _all_means(self) -> dict:
        return load_all_means(self.tree.all_means)

    def mean_rot6d(self, group: str, num_joints: int) -> np.ndarray:
        """The 6D mean of ``group`` as ``[num_joints, 6]``; identity for groups without one."""
        entry = self.all_means().get(group)
        if isinstance(entry, dict) and "cont_rot_repr" in entry:
            return _check_shape(self.tree.all_means, np.asarray(entry["cont_rot_repr"]).reshape(-1, 6), (num_joints, 6))
        return np.tile(np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]), (num_joints, 1))

    def shape_mean(self) -> np.ndarray:
        """``shape_mean.npy``: the mean SMPL-X betas ``[>= 10]`` used to start the body head."""
        return load_shape_mean(self.tree.shape_mean)

    def smplx_to_j14(self) -> np.ndarray:
        """``SMPLX_to_J14.npy``: [14, 10475] regressor from SMPL-X vertices to the LSP joints."""
        return load_smplx_to_j14(self.tree.smplx_to_j14)

    def j_regressor_h36m(self) -> np.ndarray:
        """``J_regressor_h36m.npy``: [17, 6890] regressor from SMPL vertices to the H3.6M joints."""
        return load_j_regressor_h36m(self.tree.j_regressor_h36m)

    def mano_smplx_vertex_ids(self) -> dict[str, np.ndarray]:
        """``MANO_SMPLX_vertex_ids.pkl``: the 778 SMPL-X vertex ids of each hand."""
        return load_mano_smplx_vertex_ids(self.tree.mano_smplx_vertex_ids)

    def smplx_flame_vertex_ids(self) -> np.ndarray:
        """``SMPL-X__FLAME_vertex_ids.npy``: the 5023 SMPL-X vertex ids of the FLAME head."""
        return load_smplx_flame_vertex_ids(self.tree.smplx_flame_vertex_ids)

    def flame_static_embedding(self) -> dict[str, np.ndarray]:
        """``flame_static_embedding.pkl``: 51 landmark faces (``lmk_face_idx``) and barycentrics."""
        return load_flame_static_embedding(self.tree.flame_static_embedding)

    def flame_dynamic_embedding(self) -> dict[str, np.ndarray]:
        """``flame_dynamic_embedding.npy``: contour landmarks per head yaw ([79, 17] faces, barycentrics)."""
        return load_flame_dynamic_embedding(self.tree.flame_dynamic_embedding)
