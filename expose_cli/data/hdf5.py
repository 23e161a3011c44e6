"""The uniform HDF5 layout of preprocessed datasets (``expose-hdf5`` v1; see docs/hdf5-schema.md).

One file per dataset and split, one row per person. Converters yield flat sample dicts whose keys
are the dataset paths (``"smplx/body_pose"``); :class:`HDF5Writer` appends them in blocks (bounded
memory), chunked and compressed, to a temporary file renamed when complete. :class:`HDF5Reader`
(the one reader) reads rows back for training, evaluation and inspection.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from expose_cli.data.hdf5_chunks import write_rows
from expose_cli.errors import ExposeError, option
from expose_cli.utils.atomic import move_into_place, temp_path_for

FORMAT_NAME = "expose-hdf5"
FORMAT_VERSION = 2  # 2: per-row fields chunked ROW_CHUNK rows (1: 256 rows; still read)
KEYPOINT_CONVENTION = "smplx"
NUM_KEYPOINTS = 144

#: Fields with a fixed per-row shape and dtype; a converter may omit any (then filled as below).
FIELDS: dict[str, tuple[tuple[int, ...], str]] = {
    "image_size": ((2,), "int32"),  # height, width (px)
    "bbox_xywh": ((4,), "float32"),  # px, original image
    "keypoints2d": ((NUM_KEYPOINTS, 3), "float32"),  # x, y (px), confidence
    "keypoints3d": ((NUM_KEYPOINTS, 4), "float32"),  # x, y, z (m, camera frame), confidence
    "smplx/global_orient": ((3,), "float32"),
    "smplx/body_pose": ((21, 3), "float32"),
    "smplx/jaw_pose": ((3,), "float32"),
    "smplx/leye_pose": ((3,), "float32"),
    "smplx/reye_pose": ((3,), "float32"),
    "smplx/left_hand_pose": ((15, 3), "float32"),
    "smplx/right_hand_pose": ((15, 3), "float32"),
    "smplx/betas": ((10,), "float32"),
    "smplx/expression": ((10,), "float32"),
    "flame/global_orient": ((3,), "float32"),
    "flame/jaw_pose": ((3,), "float32"),
    "flame/betas": ((100,), "float32"),
    "flame/expression": ((50,), "float32"),
    "mano/global_orient": ((3,), "float32"),
    "mano/right_hand_pose": ((15, 3), "float32"),
    "mano/betas": ((10,), "float32"),
    "smpl/global_orient": ((3,), "float32"),
    "smpl/body_pose": ((23, 3), "float32"),
    "smpl/betas": ((10,), "float32"),
    "camera/K": ((3, 3), "float32"),
    "camera/R": ((3, 3), "float32"),
    "camera/T": ((3,), "float32"),
    "has_smplx": ((), "bool"),
    "has_flame": ((), "bool"),
    "has_mano": ((), "bool"),
    "has_smpl": ((), "bool"),
    "has_camera": ((), "bool"),
    "is_right": ((), "bool"),
    "gender": ((), "int8"),  # 0 neutral / unknown, 1 male, 2 female
    "mano_scale": ((), "float32"),  # FreiHAND: length of bone 9-10 (m)
    "scan_landmarks": ((7, 3), "float32"),  # Stirling: 7 landmarks (mm, scan frame)
    "image_crop_affine": ((2, 3), "float32"),  # --embed-images: original px -> stored crop px
}
#: Per-dataset fields of variable row shape, created from the first sample (e.g. ``vertices``).
FREE_FIELDS = ("vertices",)
GENDER_CODES = {"neutral": 0, "n": 0, "male": 1, "m": 1, "female": 2, "f": 2}
BLOCK = 256  # rows per chunk of image_path and the write unit below
#: Rows per chunk of the per-row fields: a random row (training) decompresses 16 rows, not 256, of
#: each field it reads (measured: 9.1 -> 1.3 ms per 13-field row; benchmarks/bench_train_data.py).
ROW_CHUNK = 16
#: Rows buffered before a write (whole chunks; fewer, larger writes: h5py's per-call cost is
#: ~0.1 ms per dataset, 37 datasets). With ``--embed-images`` a block of JPEGs is written at a time.
FLUSH_ROWS = 16 * BLOCK
_KNOWN = frozenset(FIELDS) | frozenset(FREE_FIELDS) | {"image_path", "scan/vertices", "image_jpeg"}


def _column(samples: list[dict], name: str, shape: tuple[int, ...], dtype, fill: float = 0) -> np.ndarray | None:
    """``[len(samples), *shape]`` of field ``name``; samples without it get ``fill``; None when
    no sample has it (the rows are then left unwritten and read back as the dataset's fill value).

    Each value is converted as ``np.asarray(value, dtype).reshape(shape)``; values of one shape
    are converted in one call.
    """
    m = len(samples)
    values = [s[name] for s in samples if name in s]
    if not values:
        return None
    if len(values) == m:
        try:
            return np.asarray(values, dtype=dtype).reshape(m, *shape)
        except ValueError:  # values of different shapes: one at a time (and the error names the shape)
            pass
    block = np.full((m, *shape), fill, dtype=dtype)
    for i, s in enumerate(samples):
        if name in s:
            block[i] = np.asarray(s[name], dtype=dtype).reshape(shape)
    return block


class SampleBlock(dict):
    """Rows ``len(block["image_path"])`` at once: field -> ``[rows, *shape]`` values (any field of
    :data:`FIELDS`; ``image_path`` a list of str). Converters yield these instead of one dict per
    row when ``options["blocks"]`` is set (no ``--limit`` or ``--embed-images``)."""

    @property
    def rows(self) -> int:
        return len(self["image_path"])


class DropStats:
    """Counts of kept and dropped samples, by reason; saved in the file's attributes."""

    def __init__(self) -> None:
        self.dropped: Counter = Counter()
        self.notes: Counter = Counter()

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` samples not written, for ``reason``."""
        self.dropped[reason] += n

    def note(self, what: str, n: int = 1) -> None:
        """Count a kept-but-noteworthy choice (e.g. 'undetected keypoints zeroed')."""
        self.notes[what] += n


class HDF5Writer:
    """Streams samples into ``path`` (via a temporary file; renamed by :meth:`close`)."""

    def __init__(self, path: str | Path, dataset: str, split: str, raw_root: str | Path,
                 converter_version: str, overwrite: bool = False, embed_images: bool = False,
                 attrs: dict | None = None) -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise ExposeError("output exists", path=self.path, hint=f"pass {option('overwrite')} to replace it")
        self.tmp = temp_path_for(self.path)
        self.file = h5py.File(self.tmp, "w")
        self.file.attrs.update({
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "dataset": dataset, "split": split,
            "raw_root": str(Path(raw_root).resolve()), "converter_version": converter_version,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "keypoint_convention": KEYPOINT_CONVENTION,
        })
        for key, value in (attrs or {}).items():
            self.file.attrs[key] = value
        self.embed_images = embed_images
        self.buffer: list[dict] = []
        self.count = 0
        self.kp2d_mask = np.zeros(NUM_KEYPOINTS, bool)
        self.kp3d_mask = np.zeros(NUM_KEYPOINTS, bool)
        self.scan_offset = 0
        self.stats = DropStats()
        self._datasets: dict[str, h5py.Dataset] | None = None

    def _create(self) -> None:
        f = self.file
        f.create_dataset("image_path", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(), chunks=(BLOCK,))
        for name, (shape, dtype) in FIELDS.items():
            f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                             chunks=(ROW_CHUNK, *shape), compression="gzip", compression_opts=1, shuffle=True)
        first = self.buffer[0]
        for name in FREE_FIELDS:
            if name in first:
                shape = np.asarray(first[name]).shape
                f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype="float32",
                                 chunks=(max(1, min(BLOCK, 2**20 // max(1, int(np.prod(shape))))), *shape),
                                 compression="gzip", compression_opts=4, shuffle=True, fillvalue=np.nan)
        if any("scan/vertices" in s for s in self.buffer):
            f.create_dataset("scan/vertices", shape=(0, 3), maxshape=(None, 3), dtype="float32",
                             chunks=(65536, 3), compression="gzip", compression_opts=4)
            f.create_dataset("scan/offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(BLOCK,))
        if self.embed_images:
            f.create_dataset("image_jpeg", shape=(0,), maxshape=(None,), dtype=h5py.vlen_dtype(np.uint8), chunks=(64,))

    def append(self, sample: dict[str, Any]) -> None:
        if not _KNOWN.issuperset(sample):
            raise ValueError(f"unknown sample fields: {sorted(sample.keys() - _KNOWN)}")
        self.buffer.append(sample)
        if len(self.buffer) >= (BLOCK if self.embed_images else FLUSH_ROWS):
            self._flush()

    def append_block(self, block: SampleBlock) -> None:
        """Append ``block``'s rows after the rows appended so far."""
        bad = sorted((block.keys() - _KNOWN) | (block.keys() & {"scan/vertices", "image_jpeg"}))
        if bad:
            raise ValueError(f"fields a SampleBlock cannot hold: {bad}")
        if block.rows == 0:
            return
        if self.count == 0 and not self.buffer:
            self.buffer = [{k: v[0] for k, v in block.items()}]  # the first row names the fields to create
            self._create()
            self.buffer = []
        self._flush()
        n, m = self.count, block.rows
        for name, ds in self._handles().items():
            ds.resize(n + m, axis=0)
            if name == "image_path":
                ds[n:] = [str(p) for p in block["image_path"]]
            elif name in block:
                values = np.asarray(block[name], dtype=ds.dtype).reshape(m, *ds.shape[1:])
                write_rows(ds, n, values)
                self._update_masks(name, values)
        self.count += m

    def _handles(self) -> dict:
        """The per-row datasets, looked up once: h5py's name lookup costs ~0.1 ms a call."""
        if self._datasets is None:
            f = self.file
            self._datasets = {name: f[name] for name in ["image_path", *FIELDS, *[k for k in FREE_FIELDS if k in f]]}
        return self._datasets

    def _update_masks(self, name: str, block: np.ndarray) -> None:
        if name == "keypoints2d":
            self.kp2d_mask |= (block[:, :, 2] > 0).any(axis=0)
        elif name == "keypoints3d":
            self.kp3d_mask |= (block[:, :, 3] > 0).any(axis=0)

    def _flush(self) -> None:
        if not self.buffer:
            return
        if self.count == 0:
            self._create()
        f, n, m = self.file, self.count, len(self.buffer)
        for name, ds in self._handles().items():
            ds.resize(n + m, axis=0)
            if name == "image_path":
                ds[n:] = [str(s["image_path"]) for s in self.buffer]
                continue
            block = _column(self.buffer, name, ds.shape[1:], ds.dtype, fill=np.nan if name in FREE_FIELDS else 0)
            if block is None:  # absent from the whole block: unwritten chunks read as the fill value
                continue
            write_rows(ds, n, block)
            self._update_masks(name, block)
        if "scan/vertices" in f:
            self._flush_scans(n, m)
        if self.embed_images:
            ds = f["image_jpeg"]
            ds.resize(n + m, axis=0)
            for i, s in enumerate(self.buffer):
                ds[n + i] = np.frombuffer(s.get("image_jpeg", b""), np.uint8)
        self.count += m
        self.buffer = []

    def _flush_scans(self, n: int, m: int) -> None:
        f = self.file
        scans = [np.asarray(s.get("scan/vertices", np.zeros((0, 3))), np.float32) for s in self.buffer]
        flat = np.concatenate(scans)
        vds, ods = f["scan/vertices"], f["scan/offsets"]
        vds.resize(self.scan_offset + len(flat), axis=0)
        vds[self.scan_offset:] = flat
        offsets = self.scan_offset + np.cumsum([len(x) for x in scans])
        ods.resize(n + m + 1, axis=0)
        ods[n + 1:] = offsets
        self.scan_offset = int(offsets[-1])

    def close(self, stats: DropStats | None = None) -> Path:
        """Finish: masks and counts into the attributes, then rename to the final name."""
        stats = stats or self.stats
        self._flush()
        f = self.file
        if self.count == 0:
            f.create_dataset("image_path", shape=(0,), dtype=h5py.string_dtype())
        f["keypoints2d_mask"] = self.kp2d_mask
        f["keypoints3d_mask"] = self.kp3d_mask
        f.attrs["num_samples"] = self.count
        f.attrs["dropped"] = json.dumps(dict(stats.dropped))
        f.attrs["notes"] = json.dumps(dict(stats.notes))
        f.close()
        return move_into_place(self.tmp, self.path)  # the umask's mode, not mkstemp's 0600

    def abort(self) -> None:
        """Close and delete the temporary file (an interrupted or failed conversion)."""
        try:
            self.file.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def check_header(path: Path, attrs) -> None:
    """One-line errors for a file that is not ours or is newer than this expose reads."""
    if attrs.get("format") != FORMAT_NAME:
        raise ExposeError("not a file written by `expose preprocess` (no 'expose-hdf5' format attribute)",
                          path=path, hint="re-run `expose preprocess` for this dataset")
    version = int(attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise ExposeError(f"format version {version} is newer than this expose reads ({FORMAT_VERSION})",
                          path=path, hint="upgrade expose, or re-run `expose preprocess` with this version")


class HDF5Reader:
    """Rows of one preprocessed file, as dicts of numpy arrays: the one reader of the layout, for
    evaluation, inspection and training alike.

    The header (format, version), length, keypoint masks and attributes are read at construction
    (one-line errors); the file is then opened lazily in the process that reads rows, so forked or
    spawned DataLoader workers each open their own handle (one inherited through ``fork`` is never
    used). Dataset handles are looked up once. ``fields``: the per-row fields :meth:`row` returns by
    default (all when empty); :meth:`require` checks and sets them.
    """

    def __init__(self, path: str | Path, fields: tuple[str, ...] = ()) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ExposeError("file not found", path=self.path)
        try:
            with h5py.File(self.path, "r") as f:
                self.attrs = {k: _plain(v) for k, v in f.attrs.items()}
                check_header(self.path, self.attrs)
                self.length = int(f["image_path"].shape[0]) if "image_path" in f else 0
                self.masks = {k: np.asarray(f[k][()], bool) for k in ("keypoints2d_mask", "keypoints3d_mask") if k in f}
                self.has_embedded = "image_jpeg" in f and "image_crop_affine" in f
                self._names = _dataset_names(f)
        except OSError as exc:
            raise ExposeError(f"cannot open as HDF5: {exc}", path=self.path) from exc
        self._per_row = tuple(n for n in self._names if n not in _NOT_ROWS)  # every per-row field
        self.row_fields: tuple[str, ...] = ()
        self._pid: int | None = None
        self._file: h5py.File | None = None
        self._datasets: dict[str, h5py.Dataset] = {}
        self.require(fields)

    def require(self, fields: tuple[str, ...], hint: str | None = None) -> HDF5Reader:
        """Make ``fields`` the default of :meth:`row` (all per-row fields when empty); raise, naming
        them, when the file lacks any. ``hint``: what to do about it."""
        missing = [name for name in fields if name not in self._names]
        if missing:
            raise ExposeError(f"lacks the fields {', '.join(missing)}", path=self.path, hint=hint)
        self.row_fields = tuple(fields) or self._per_row
        return self

    def __len__(self) -> int:
        return self.length

    def __contains__(self, name: str) -> bool:
        return name in self._names

    @property
    def dataset(self) -> str:
        return str(self.attrs["dataset"])

    @property
    def file(self) -> h5py.File:
        """The file, open in this process (a handle opened before a fork is dropped, not shared)."""
        if self._pid != os.getpid() or self._file is None:
            self._file = h5py.File(self.path, "r", rdcc_nbytes=4 * 2**20)
            self._datasets, self._pid = {}, os.getpid()
        return self._file

    def fields(self) -> list[str]:
        """Every dataset of the file, sorted."""
        return list(self._names)

    def column(self, name: str) -> np.ndarray:
        """A whole column; read through a handle opened for the call unless one is open here (so a
        file-level check in the parent leaves no handle for DataLoader workers to inherit)."""
        if self._pid == os.getpid() and self._file is not None:
            return self._file[name][()]
        with h5py.File(self.path, "r") as f:
            return f[name][()]

    def scan(self, index: int) -> np.ndarray:
        off = self.file["scan/offsets"]
        return self.file["scan/vertices"][int(off[index]):int(off[index + 1])]

    def row(self, index: int, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
        """``{field: value}`` of row ``index`` for ``fields`` (default :attr:`row_fields`);
        ``image_path`` comes back as ``str``, ``image_jpeg`` as a ``uint8`` array."""
        f, handles = self.file, self._datasets  # handles looked up once: h5py's lookup is ~0.1 ms
        out: dict[str, Any] = {}
        for name in fields or self.row_fields:
            ds = handles.get(name)
            if ds is None:
                ds = handles[name] = f[name]
            value = ds[index]
            out[name] = value.decode() if isinstance(value, bytes) else value
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Every per-row field of row ``index`` (and ``scan/vertices``, where the file has scans)."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        row = self.row(index, self._per_row)
        if "scan/offsets" in self._names:
            row["scan/vertices"] = self.scan(index)
        return row

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._datasets, self._pid = None, {}, None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_file=None, _datasets={}, _pid=None)  # spawned workers open their own handle
        return state

    def __enter__(self) -> HDF5Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: Datasets that are not one value per row.
_NOT_ROWS = frozenset({"scan/vertices", "scan/offsets", "keypoints2d_mask", "keypoints3d_mask"})


def _dataset_names(f: h5py.File) -> list[str]:
    out: list[str] = []
    f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(out)


def _plain(value):
    return value.decode() if isinstance(value, bytes) else value
