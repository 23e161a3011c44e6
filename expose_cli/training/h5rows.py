"""Fast random-row access to one preprocessed HDF5 file for training (``expose-hdf5`` v1 and v2).

Opened lazily in the process that reads (each DataLoader worker, forked or spawned, opens its own
handle; a handle inherited through ``fork`` is never used). Only the fields asked for are read,
through dataset handles looked up once (no walk of the file's tree per row). Validation (format,
version, fields, stale files) happens once, at construction, with one-line errors.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from expose_cli.data.hdf5 import check_header
from expose_cli.data.validity import stale_reason
from expose_cli.errors import ExposeError


class H5Rows:
    """Rows of ``fields`` of one file, by index, as numpy arrays.

    ``fields`` that the file lacks raise at construction, naming them. ``image_path`` comes back as
    ``str``, ``image_jpeg`` as a ``uint8`` array.
    """

    def __init__(self, path: str | Path, fields: tuple[str, ...]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ExposeError("file not found", path=self.path)
        try:
            with h5py.File(self.path, "r") as f:
                self.attrs = {k: _plain(v) for k, v in f.attrs.items()}
                check_header(self.path, self.attrs)
                stale = stale_reason(self.attrs)
                if stale is not None:
                    raise ExposeError(stale, path=self.path)
                missing = [name for name in fields if name not in f]
                if missing:
                    raise ExposeError(f"lacks the fields {', '.join(missing)}", path=self.path,
                                      hint="re-run `expose preprocess` (with --embed-images for image_jpeg)")
                self.length = int(f["image_path"].shape[0]) if "image_path" in f else 0
                self.masks = {k: np.asarray(f[k][()], bool) for k in ("keypoints2d_mask", "keypoints3d_mask") if k in f}
                self.has_embedded = "image_jpeg" in f and "image_crop_affine" in f
        except OSError as exc:
            raise ExposeError(f"cannot open as HDF5: {exc}", path=self.path) from exc
        self.fields = tuple(fields)
        self._pid: int | None = None
        self._file: h5py.File | None = None
        self._datasets: dict[str, h5py.Dataset] = {}

    def __len__(self) -> int:
        return self.length

    def column(self, name: str) -> np.ndarray:
        """A whole column (for file-level checks), read once and closed."""
        with h5py.File(self.path, "r") as f:
            return f[name][()]

    def _open(self) -> None:
        """Open in this process: a handle opened before a fork is dropped, not shared."""
        if self._pid == os.getpid() and self._file is not None:
            return
        self._file = h5py.File(self.path, "r", rdcc_nbytes=4 * 2**20)
        self._datasets = {name: self._file[name] for name in self.fields}
        self._pid = os.getpid()

    def row(self, index: int, fields: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """``{field: value}`` of row ``index`` for ``fields`` (default: all given at construction)."""
        self._open()
        out = {}
        for name in fields or self.fields:
            value = self._datasets[name][index]
            out[name] = value.decode() if isinstance(value, bytes) else value
        return out

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._datasets, self._pid = None, {}, None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_file=None, _datasets={}, _pid=None)  # spawned workers open their own handle
        return state


def _plain(value):
    return value.decode() if isinstance(value, bytes) else value
