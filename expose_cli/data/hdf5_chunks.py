"""Rows written to a chunked, deflated HDF5 dataset with whole chunks compressed here.

HDF5 compresses each chunk with zlib (level 1 for the per-row fields: ~350 MB/s on this
machine, most of a COCO conversion's write time: 141 MB of ``keypoints2d``). :func:`write_rows`
writes the whole chunks of a block itself (``write_direct_chunk``) with the bytes HDF5's filter
pipeline would store: the shuffle filter's byte transpose, then a zlib stream, made by
**isal** (Intel's ISA-L deflate, ~3x zlib's speed, smaller output here) when installed, else by
``zlib``. Readers see the same values: any zlib stream inflates alike. Rows before the first
chunk boundary and after the last are written through h5py as before; datasets with other
filters or layouts are written through h5py entirely.
"""

from __future__ import annotations

import zlib

import h5py
import numpy as np

try:
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - isal is a dependency; zlib gives the same values
    _isal = None


def deflate(data: bytes, level: int) -> bytes:
    """A zlib stream of ``data`` (isal's levels are 0-3: HDF5's 1 -> 1, higher -> 3)."""
    if _isal is not None:
        return _isal.compress(data, min(level, 3))
    return zlib.compress(data, level)


def _plan(ds: h5py.Dataset) -> tuple[bool, int] | None:
    """(shuffled, deflate level) when ``ds`` is chunked one row-run at a time (chunks ``(k,
    *row shape)``) with exactly [shuffle,] deflate; None otherwise."""
    if ds.chunks is None or tuple(ds.chunks[1:]) != tuple(ds.shape[1:]):
        return None
    dcpl = ds.id.get_create_plist()
    filters = [dcpl.get_filter(i) for i in range(dcpl.get_nfilters())]
    names = [f[0] for f in filters]
    if names == [h5py.h5z.FILTER_DEFLATE]:
        return False, int(filters[0][2][0])
    if names == [h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE]:
        return True, int(filters[1][2][0])
    return None


def write_rows(ds: h5py.Dataset, start: int, values: np.ndarray) -> None:
    """``ds[start:start + len(values)] = values`` (``ds`` already long enough; ``values`` of its
    dtype and row shape), whole chunks compressed here (see the module docstring)."""
    plan, m = _plan(ds), len(values)
    if plan is None or values.dtype != ds.dtype:
        ds[start:start + m] = values
        return
    shuffled, level = plan
    rows = ds.chunks[0]
    head = min(-start % rows, m)
    whole = (m - head) // rows
    if head:
        ds[start:start + head] = values[:head]
    if whole:
        body = np.ascontiguousarray(values[head:head + whole * rows]).view(np.uint8)
        size = ds.dtype.itemsize
        body = body.reshape(whole, -1, size)
        if shuffled and size > 1:  # HDF5's shuffle: byte 0 of every value, then byte 1, ...
            body = np.ascontiguousarray(body.transpose(0, 2, 1))
        zeros = (0,) * (ds.ndim - 1)
        for k in range(whole):
            ds.id.write_direct_chunk((start + head + k * rows, *zeros), deflate(body[k].tobytes(), level))
    if head + whole * rows < m:
        ds[start + head + whole * rows:start + m] = values[head + whole * rows:]
