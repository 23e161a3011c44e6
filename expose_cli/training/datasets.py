"""Training datasets over the preprocessed HDF5 files: one sample dict per (member, row).

:class:`TrainDataset` concatenates the members of a :class:`~.data_config.DataConfig` (e.g. the body
preset's ``curated_fits``, ``spin_smplx`` = the four ``spin_smplx_{coco,lsp,lspet,mpii}.h5`` files
as one member, and ``h36m_smplx``) and turns each row into the sample of the training contract
(docs/train.md, "Data"): the augmented crop, keypoints in crop pixels / camera metres, SMPL-X (or
MANO / FLAME) parameters with per-sample ``has_*`` masks. Index it with an int, or with the
``(index, epoch, draw)`` keys :class:`~.mixing.MixedSampler` yields; the augmentation's random
draws depend only on ``(seed, epoch, draw, index)``, so any worker gives the same sample.

A sample whose image cannot be read is replaced by another row of the same member (drawn from the
same seeded generator) and counted in the sample's ``skipped`` field; sum it over an epoch and
report it (:func:`skipped_report`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from expose_cli.body_models.keypoints import convert_keypoints, get_convention
from expose_cli.data.hdf5 import HDF5Reader
from expose_cli.data.validity import stale_reason
from expose_cli.errors import ExposeError, option
from expose_cli.io.catalog import MEMBERS
from expose_cli.io.images import read_image
from expose_cli.io.paths import DataTree
from expose_cli.kinds import KINDS, Kind, kind_names
from expose_cli.training.data_config import DataConfig
from expose_cli.training.sample import Record, SourceImage, make_sample

PARAM_SHAPES = {"global_orient": (3,), "body_pose": (21, 3), "jaw_pose": (3,), "left_hand_pose": (15, 3),
                "right_hand_pose": (15, 3)}
HAS_KEYS = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose", "betas", "expression")
BASE_FIELDS = ("image_path", "image_size", "bbox_xywh", "keypoints2d", "keypoints3d")
MAX_IMAGE_RETRIES = 10


def member_files(name: str, data_dir: Path) -> tuple[list[Path], str]:
    """The files of member ``name`` and the command that makes them: a catalog dataset's training
    splits (:data:`expose_cli.io.catalog.MEMBERS`), a path ending in ``.h5``, or ``<name>_train.h5``."""
    if name.endswith(".h5"):
        return [Path(name)], "expose preprocess"
    tree = DataTree(Path(data_dir))
    if name in MEMBERS:
        entry = MEMBERS[name]
        return [tree.preprocessed_file(entry.name, s) for s in entry.training_splits], entry.member_command
    return [tree.preprocessed / f"{name}_train.h5"], f"expose preprocess {name.replace('_', '-')} --split train"


def _image_candidates(raw_root: str, image_path: str, data_dir: Path | None) -> list[Path]:
    """``raw_root/image_path``, then the same below ``data_dir/datasets`` (a moved data tree)."""
    out = [Path(raw_root) / image_path]
    parts = Path(raw_root).parts
    if data_dir is not None and "datasets" in parts:
        rel = Path(*parts[len(parts) - 1 - parts[::-1].index("datasets") + 1:]) if parts[-1] != "datasets" else Path()
        out.append(Path(data_dir) / "datasets" / rel / image_path)
    return out


class ImageUnreadable(Exception):
    """The image of a row could not be read (the dataset skips the row and counts it)."""


def _core_joints(kind: str) -> list[str]:
    """Joints whose keypoints make a file useful for ``kind`` (body joints, hand joints, face landmarks)."""
    spec = KINDS[kind]
    return list(get_convention(spec.convention).names[spec.core_joints])


def check_kind_content(rows: HDF5Reader, kind: str) -> None:
    """One-line error when a file has neither the kind's parameters nor keypoints of its joints."""
    spec = KINDS[kind]
    has_params = bool(np.any(rows.column(f"has_{spec.body_model}")))
    names = get_convention("smplx").names
    present = np.zeros(len(names), bool)
    for mask in rows.masks.values():
        present |= mask
    core = set(_core_joints(kind))
    has_kps = any(present[i] for i, n in enumerate(names) if n in core)
    if not (has_params or has_kps):
        raise ExposeError(
            f"has nothing the {kind} model trains on: missing {spec.body_model}/* parameters "
            f"(has_{spec.body_model} is false in every row) and 2D/3D keypoints of the {kind} joints",
            path=rows.path, hint=f"train the {kind} model on another dataset (see docs/train.md)")


class Member:
    """One mixture member: one or more HDF5 files read as one list of rows."""

    def __init__(self, name: str, data_dir: Path, kind: str, images: str = "auto") -> None:
        self.name, self.kind, self.spec = name, kind, KINDS[kind]
        self.data_dir = Path(data_dir)
        paths, command = member_files(name, data_dir)
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise ExposeError("preprocessed file not found", path=missing[0], hint=f"run `{command}`")
        self.files = [self._open(p, images) for p in paths]
        self.offsets = np.cumsum([0] + [len(f) for f in self.files])
        if self.offsets[-1] == 0:
            raise ExposeError("has no rows", path=paths[0], hint=f"re-run `{command}`")

    def _open(self, path: Path, images: str) -> HDF5Reader:
        """The file's reader, checked (header, converter version, fields, content), its rows
        limited to the kind's fields (and the embedded crops where they are used)."""
        spec = self.spec
        rows = HDF5Reader(path)
        stale = stale_reason(rows.attrs)
        if stale is not None:
            raise ExposeError(stale, path=path)
        fields = (*BASE_FIELDS, f"has_{spec.body_model}", *spec.params.values())
        embedded = rows.has_embedded if images == "auto" else images == "embedded"
        if embedded:
            fields = (*fields, "image_jpeg", "image_crop_affine")
        rows.require(fields, hint=f"re-run `expose preprocess` (with {option('embed-images')} for image_jpeg)")
        check_kind_content(rows, self.kind)
        return rows

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[HDF5Reader, int]:
        f = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.files[f], index - int(self.offsets[f])

    def record(self, index: int) -> tuple[Record, SourceImage]:
        """Row ``index`` of the member as a :class:`Record` and its image (raises ImageUnreadable)."""
        rows, i = self.locate(index)
        row = rows.row(i)
        return row_record(row, self.spec), self._image(rows, row)

    def _image(self, rows: HDF5Reader, row: dict) -> SourceImage:
        if "image_jpeg" in row:  # the embedded crop (chosen in _open)
            data = np.asarray(row["image_jpeg"], np.uint8)
            image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
            if image is None:
                raise ImageUnreadable(f"{rows.path}: embedded image of {row['image_path']}")
            return SourceImage(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.asarray(row["image_crop_affine"], np.float64))
        for path in _image_candidates(str(rows.attrs.get("raw_root", "")), row["image_path"], self.data_dir):
            if path.is_file():
                try:
                    return SourceImage(read_image(path), np.array([[1.0, 0, 0], [0, 1.0, 0]]))
                except ExposeError as exc:
                    raise ImageUnreadable(str(exc)) from exc
        raise ImageUnreadable(f"{rows.path}: image not found: {row['image_path']}")


def row_record(row: dict, spec: Kind) -> Record:
    """A :class:`Record` from one HDF5 row: box centre/side, keypoints in the kind's convention,
    parameters, and per-sample ``has_*`` (the row's ``has_<model>`` and a group that is not all zero)."""
    x, y, w, h = (float(v) for v in row["bbox_xywh"])
    height, width = (int(v) for v in row["image_size"])
    kp2d = convert_keypoints(np.asarray(row["keypoints2d"], np.float64), "smplx", spec.convention)[0]
    kp3d = convert_keypoints(np.asarray(row["keypoints3d"], np.float64), "smplx", spec.convention)[0]
    has_model = bool(row[f"has_{spec.body_model}"])
    shapes = {**PARAM_SHAPES, "betas": (spec.num_betas,), "expression": (spec.num_expression,)}
    params, has = {}, {}
    for key, shape in shapes.items():
        value = np.asarray(row[spec.params[key]], np.float64).reshape(shape) if key in spec.params else np.zeros(shape)
        params[key] = value
        has[key] = float(has_model and key in spec.params and bool(np.any(value != 0)))
    return Record(np.array([x + w / 2, y + h / 2]), np.array([max(w, h)] * 2), (height, width), kp2d, kp3d,
                  params, has, spec.convention)


def _parse_key(key, default_epoch: int) -> tuple[int, int, int]:
    """An int index, or the ``(index, epoch, draw)`` of :class:`~.mixing.MixedSampler`."""
    if isinstance(key, (tuple, list)):
        index, epoch, draw = (int(v) for v in key)
        return index, epoch, draw
    return int(key), default_epoch, int(key)


class TrainDataset(Dataset):
    """The members of a :class:`DataConfig`, concatenated; ``dataset[i]`` or ``dataset[(i, epoch, draw)]``.

    ``images``: ``auto`` (embedded crops where the file has them, else raw images), ``embedded`` or
    ``raw``. ``train=False`` turns the augmentations off (centre crop, no noise).
    """

    def __init__(self, cfg: DataConfig, data_dir: Path, kind: str, seed: int = 0, images: str = "auto",
                 train: bool = True) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {kind_names()}")
        self.cfg, self.kind, self.seed, self.train = cfg, kind, int(seed), train
        self.members = [Member(name, data_dir, kind, images) for name in cfg.members]
        self.offsets = np.cumsum([0] + [len(m) for m in self.members])
        self.epoch = 0

    @property
    def member_sizes(self) -> list[int]:
        return [len(m) for m in self.members]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for int indices (keys from :class:`~.mixing.MixedSampler` carry their own)."""
        self.epoch = int(epoch)

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        index, epoch, draw = _parse_key(key, self.epoch)
        rng = np.random.default_rng([self.seed, epoch, draw, index])
        m = int(np.searchsorted(self.offsets, index, side="right") - 1)
        member, row = self.members[m], index - int(self.offsets[m])
        skipped = 0
        while True:
            try:
                rec, src = member.record(row)
                break
            except ImageUnreadable as exc:
                skipped += 1
                if skipped > MAX_IMAGE_RETRIES:
                    raise ExposeError(f"{skipped} unreadable images in a row in member {member.name!r}; last: {exc}",
                                      hint=f"check {option('data-dir')} / the raw image folder, or re-run `expose preprocess "
                                           "--embed-images`") from exc
                row = int(rng.integers(len(member)))
        sample = make_sample(rec, src, self.cfg.augment, self.cfg.img_res, rng,
                             with_full_image=KINDS[self.kind].keeps_full_image, train=self.train)
        if member.name in self.cfg.skip_keypoints2d:  # as a file without 2D keypoints (the seed's H3.6M)
            sample["keypoints2d"] = torch.zeros_like(sample["keypoints2d"])
            sample["has_keypoints2d"] = torch.zeros_like(sample["has_keypoints2d"])
        sample["dataset_index"] = torch.tensor(m, dtype=torch.int64)
        sample["sample_index"] = torch.tensor(row, dtype=torch.int64)
        sample["skipped"] = torch.tensor(skipped, dtype=torch.int64)
        return sample


def build_train_dataset(cfg: DataConfig, data_dir: Path, kind: str, seed: int, images: str = "auto",
                        augment: bool = True) -> TrainDataset:
    """The training dataset of ``cfg`` for model ``kind`` under ``data_dir`` (the data tree).

    ``augment=False``: evaluation-style samples, exactly what the network is fed without the random
    steps (the stored box's crop, no jitter, flip, scale, rotation, noise or low-res): the same
    sample for every epoch and draw."""
    return TrainDataset(cfg, Path(data_dir), kind, seed, images, train=augment)


def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack samples into a batch; ``ori_img`` (full model) is zero-padded to the largest H, W."""
    out: dict[str, torch.Tensor] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key == "ori_img":
            h = max(v.shape[1] for v in values)
            w = max(v.shape[2] for v in values)
            batch = values[0].new_zeros((len(values), values[0].shape[0], h, w))
            for i, v in enumerate(values):
                batch[i, :, : v.shape[1], : v.shape[2]] = v
            out[key] = batch
        else:
            out[key] = torch.stack(values)
    return out


def skipped_report(total_skipped: int, epoch: int) -> str | None:
    """The end-of-epoch line for unreadable images (None when there were none)."""
    if total_skipped <= 0:
        return None
    return (f"epoch {epoch}: {total_skipped} sample(s) skipped because their image could not be read "
            "(replaced by other rows of the same dataset)")
