"""Typed loaders for the seed's auxiliary body-model files (downloaded by `expose fetch-models`).

Each loader checks the file exists, reads it safely and checks its shape, raising an error that
names the file and the command that provides it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from expose_cli.assets.paths import DataTree
from expose_cli.assets.safe_pickle import safe_load_npy, safe_load_pickle, to_numpy
from expose_cli.errors import ExposeError, MissingFileError

FETCH_HINT = "run `expose fetch-models` (or copy the file there)"


def _load(path: Path) -> object:
    if not path.is_file():
        raise MissingFileError(path, "auxiliary file", FETCH_HINT)
    if path.suffix == ".pkl":
        return to_numpy(safe_load_pickle(path))
    return safe_load_npy(path)


def _check_shape(path: Path, array: np.ndarray, shape: tuple) -> np.ndarray:
    array = np.asarray(array)
    ok = array.ndim == len(shape) and all(w is None or w == g for w, g in zip(shape, array.shape, strict=True))
    if not ok:
        want = "x".join("N" if s is None else str(s) for s in shape)
        raise ExposeError(f"expected an array of shape {want}, found {array.shape}", path=path,
                          hint="the file is damaged or another file; " + FETCH_HINT)
    return array


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
        path = self.tree.all_means
        data = _load(path)
        if not isinstance(data, dict) or "body_pose" not in data:
            raise ExposeError("expected a dict with a 'body_pose' entry", path=path, hint=FETCH_HINT)
        return data

    def mean_rot6d(self, group: str, num_joints: int) -> np.ndarray:
        """The 6D mean of ``group`` as ``[num_joints, 6]``; identity for groups without one."""
        entry = self.all_means().get(group)
        if isinstance(entry, dict) and "cont_rot_repr" in entry:
            return _check_shape(self.tree.all_means, np.asarray(entry["cont_rot_repr"]).reshape(-1, 6), (num_joints, 6))
        return np.tile(np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]), (num_joints, 1))

    def shape_mean(self) -> np.ndarray:
        """``shape_mean.npy``: the mean SMPL-X betas ``[>= 10]`` used to start the body head."""
        arr = np.asarray(_load(self.tree.shape_mean)).reshape(-1)
        if arr.size < 10:
            raise ExposeError(f"expected at least 10 values, found {arr.size}", path=self.tree.shape_mean)
        return arr.astype(np.float32)

    def smplx_to_j14(self) -> np.ndarray:
        """``SMPLX_to_J14.npy``: [14, 10475] regressor from SMPL-X vertices to the LSP joints."""
        return _check_shape(self.tree.smplx_to_j14, _load(self.tree.smplx_to_j14), (14, 10475)).astype(np.float32)

    def j_regressor_h36m(self) -> np.ndarray:
        """``J_regressor_h36m.npy``: [17, 6890] regressor from SMPL vertices to the H3.6M joints."""
        return _check_shape(self.tree.j_regressor_h36m, _load(self.tree.j_regressor_h36m), (17, 6890)).astype(np.float32)

    def mano_smplx_vertex_ids(self) -> dict[str, np.ndarray]:
        """``MANO_SMPLX_vertex_ids.pkl``: the 778 SMPL-X vertex ids of each hand."""
        path = self.tree.mano_smplx_vertex_ids
        data = _load(path)
        if not isinstance(data, dict) or not {"left_hand", "right_hand"} <= set(data):
            raise ExposeError("expected a dict with 'left_hand' and 'right_hand'", path=path, hint=FETCH_HINT)
        return {k: _check_shape(path, data[k], (778,)).astype(np.int64) for k in ("left_hand", "right_hand")}

    def smplx_flame_vertex_ids(self) -> np.ndarray:
        """``SMPL-X__FLAME_vertex_ids.npy``: the 5023 SMPL-X vertex ids of the FLAME head."""
        path = self.tree.smplx_flame_vertex_ids
        return _check_shape(path, _load(path), (5023,)).astype(np.int64)

    def flame_static_embedding(self) -> dict[str, np.ndarray]:
        """``flame_static_embedding.pkl``: 51 landmark faces (``lmk_face_idx``) and barycentrics."""
        path = self.tree.flame_static_embedding
        data = _load(path)
        if not isinstance(data, dict) or "lmk_face_idx" not in data:
            raise ExposeError("expected a dict with 'lmk_face_idx' and 'lmk_b_coords'", path=path)
        _check_shape(path, data["lmk_b_coords"], (len(np.asarray(data["lmk_face_idx"])), 3))
        return data

    def flame_dynamic_embedding(self) -> dict[str, np.ndarray]:
        """``flame_dynamic_embedding.npy``: contour landmarks per head yaw ([79, 17] faces, barycentrics)."""
        path = self.tree.flame_dynamic_embedding
        data = _load(path)
        if not isinstance(data, dict) or "lmk_face_idx" not in data:
            raise ExposeError("expected a pickled dict with 'lmk_face_idx' and 'lmk_b_coords'", path=path)
        _check_shape(path, data["lmk_face_idx"], (79, 17))
        return data
