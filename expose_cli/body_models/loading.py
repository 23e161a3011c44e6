"""Reading official body-model files (``.npz`` and chumpy ``.pkl``) into plain numpy dicts.

Every file goes through :mod:`expose_cli.io.safe_pickle` (no chumpy, no arbitrary code), and
object arrays inside ``.npz`` files (SMPL-X's ``joint2num``/``part2num``) are dropped unread.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from expose_cli.errors import ExposeError
from expose_cli.io.safe_pickle import safe_load_pickle, to_numpy
from expose_cli.utils.atomic import atomic_path

#: What each model file must contain, with the expected (vertices, faces, joints).
MODEL_SPECS = {
    "smplx": (10475, 20908, 55),
    "smpl": (6890, 13776, 24),
    "mano": (778, 1538, 16),
    "flame": (5023, 9976, 5),
}
REQUIRED_KEYS = ("v_template", "f", "J_regressor", "kintree_table", "weights", "posedirs", "shapedirs")


def load_body_model_data(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of a body-model file: chumpy objects converted, sparse regressors made dense.

    ``.npz``: numeric arrays only (object arrays are skipped without unpickling them).
    ``.pkl``: through the restricted unpickler.
    """
    path = Path(path)
    if not path.is_file():
        raise ExposeError("body-model file not found", path=path, exit_code=2,
                          hint="run `expose import-body-models` with the official download")
    if path.suffix == ".npz":
        out = {}
        try:
            with np.load(path, allow_pickle=False) as data:
                for key in data.files:
                    try:
                        out[key] = data[key]
                    except ValueError:  # an object array: needs pickle, never needed by us
                        continue
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            raise ExposeError(f"not a readable .npz file: {exc}", path=path,
                              hint="download the file again") from exc
        return out
    if path.suffix == ".pkl":
        obj = safe_load_pickle(path)
        if not isinstance(obj, dict):
            raise ExposeError(f"expected a dict of arrays, found {type(obj).__name__}", path=path)
        try:
            return {k: v for k, v in to_numpy(obj).items()}
        except ValueError as exc:
            raise ExposeError(str(exc), path=path) from exc
    raise ExposeError(f"unknown body-model file type {path.suffix!r} (expected .npz or .pkl)", path=path)


def validate_body_model(data: dict, kind: str, path: str | Path) -> None:
    """Check keys and sizes against :data:`MODEL_SPECS`; raise an error naming the file."""
    n_verts, n_faces, n_joints = MODEL_SPECS[kind]
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ExposeError(f"not a {kind.upper()} model file: missing keys {', '.join(missing)}", path=path)
    got = (data["v_template"].shape, data["f"].shape, data["J_regressor"].shape)
    want = ((n_verts, 3), (n_faces, 3), (n_joints, n_verts))
    if got != want:
        raise ExposeError(
            f"not a {kind.upper()} model: v_template/f/J_regressor have shapes {got}, expected {want}",
            path=path,
        )


def write_clean_npz(data: dict, path: str | Path) -> None:
    """Write the numeric arrays of ``data`` as an ``.npz`` with no pickled objects (atomically)."""
    arrays = {}
    for key, value in data.items():
        arr = np.asarray(value)
        if arr.dtype == object:
            continue
        arrays[key] = arr
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def npz_is_clean(path: Path) -> bool:
    """True when every member of the ``.npz`` loads without pickle."""
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                data[key]
    except ValueError:
        return False
    return True
