"""Restricted loading of the pickles that body-model downloads contain.

SMPL, MANO and FLAME ship as Python-2 pickles holding numpy arrays, scipy sparse matrices and
chumpy ``Ch`` objects. :func:`safe_load_pickle` reads them without chumpy or scipy installed and
without running arbitrary code: only numpy's array-rebuilding functions are admitted; chumpy and
scipy.sparse objects become inert stand-ins that :func:`to_numpy` turns into plain arrays.
Anything else in the pickle is refused with an error naming the file and the refused name.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from expose_cli.errors import ExposeError

#: numpy callables a pickled array needs (old ``numpy.core`` and new ``numpy._core`` paths).
_NUMPY_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}
_BUILTINS_ALLOWED = {
    ("copyreg", "_reconstructor"),
    ("copy_reg", "_reconstructor"),
    ("builtins", "object"),
    ("__builtin__", "object"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
    ("__builtin__", "slice"),
    ("_codecs", "encode"),
}


class ChumpyStandIn:
    """What a pickled chumpy object becomes: its attribute dict, nothing executed."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"ChumpyStandIn(keys={sorted(self.state) if isinstance(self.state, dict) else '?'})"


class SparseStandIn:
    """What a pickled ``scipy.sparse`` matrix becomes: its arrays (data, indices, indptr, shape)."""

    format = "csc"

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _sparse_class(fmt: str) -> type:
    return type(f"SparseStandIn_{fmt}", (SparseStandIn,), {"format": fmt})


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_ALLOWED:
            module = module.replace("numpy.core", "numpy._core") if hasattr(np, "_core") else module
            import importlib

            return getattr(importlib.import_module(module), name)
        if (module, name) in _BUILTINS_ALLOWED:
            import builtins
            import copyreg

            if name == "_reconstructor":
                return copyreg._reconstructor
            if name == "encode":
                import codecs

                return codecs.encode
            return getattr(builtins, name)  # set, frozenset, slice, object
        if module == "chumpy" or module.startswith("chumpy."):
            return ChumpyStandIn
        if module.startswith("scipy.sparse"):
            for fmt in ("csc", "csr", "coo"):
                if name == f"{fmt}_matrix" or name == f"{fmt}_array":
                    return _sparse_class(fmt)
        raise ExposeError(
            f"refusing to load: the pickle asks for '{module}.{name}', which a body-model file "
            "never contains",
            hint="this file is not an official SMPL/SMPL-X/MANO/FLAME file, or it was modified; "
            "download it again from the model's website",
            path=self._source,
        )


def safe_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with the restricted unpickler (see module docstring)."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except ExposeError:
        raise
    except Exception as exc:  # truncated or corrupt pickles
        raise ExposeError(
            f"cannot read pickle: {type(exc).__name__}: {exc}",
            hint="the file is damaged or not a pickle; download it again",
            path=source,
        ) from exc


def safe_load_pickle(path: str | Path) -> Any:
    """Load a ``.pkl`` file (latin-1, Python 2 pickles too) through the restricted unpickler."""
    path = Path(path)
    if not path.is_file():
        raise ExposeError("file not found", path=path, exit_code=2)
    return safe_loads(path.read_bytes(), str(path))


def safe_load_npy(path: str | Path) -> Any:
    """Load a ``.npy`` file; one holding a pickled object (``np.save`` of a dict) is unpickled
    through the restricted unpickler instead of ``allow_pickle=True``."""
    path = Path(path)
    if not path.is_file():
        raise ExposeError("file not found", path=path, exit_code=2)
    with open(path, "rb") as fh:
        try:
            fmt = np.lib.format
            version = fmt.read_magic(fh)
            reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            _shape, _fortran, dtype = reader(fh)
        except Exception as exc:
            raise ExposeError(f"not a .npy file: {exc}", path=path) from exc
        if dtype.hasobject:
            return to_numpy(safe_loads(fh.read(), str(path)))
    return np.load(path, allow_pickle=False)


def to_numpy(value: Any) -> Any:
    """Turn chumpy and sparse stand-ins (recursively in dicts/lists) into plain numpy arrays."""
    if isinstance(value, ChumpyStandIn):
        state = value.state if isinstance(value.state, dict) else {}
        if "x" in state:
            return np.asarray(to_numpy(state["x"]))
        raise ValueError(
            "a chumpy expression without a stored value ('x'); keys: " + ", ".join(sorted(state))
        )
    if isinstance(value, SparseStandIn):
        return _sparse_to_dense(value)
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and any(
        isinstance(v, (ChumpyStandIn, SparseStandIn, dict)) for v in value
    ):
        return type(value)(to_numpy(v) for v in value)
    if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
        return to_numpy(value.item())
    return value


def _sparse_to_dense(m: SparseStandIn) -> np.ndarray:
    state = m.state
    shape = tuple(int(s) for s in state.get("_shape", state.get("shape")))
    data = np.asarray(state["data"], dtype=np.float64)
    dense = np.zeros(shape, dtype=np.float64)
    if m.format == "coo":
        row = np.asarray(state["row"] if "row" in state else state["coords"][0])
        col = np.asarray(state["col"] if "col" in state else state["coords"][1])
        np.add.at(dense, (row, col), data)
        return dense
    indices = np.asarray(state["indices"], dtype=np.int64)
    indptr = np.asarray(state["indptr"], dtype=np.int64)
    major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    if m.format == "csc":
        np.add.at(dense, (indices, major), data)
    else:
        np.add.at(dense, (major, indices), data)
    return dense
