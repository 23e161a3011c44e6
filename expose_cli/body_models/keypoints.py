"""Keypoint conventions: ordered joint names, left/right flips, and conversion through names.

Two conventions share a joint when they use the same name, so ``convert_keypoints(kps, "coco",
"smplx")`` places each COCO point at the SMPL-X index of the same name and returns a mask of the
destination joints that were filled. Names follow the ``smplx`` package (``left_wrist``,
``right_eye_brow1``, ...); points that have no SMPL-X counterpart keep names of their own
(``head_top``, ``thorax``, ``spine_h36m``) and are dropped on conversion to ``smplx``.
Between dataset conventions, :data:`NAME_ALIASES` identifies H3.6M's ``thorax`` with the ``neck``
of LSP-14 / OpenPose / 3DPW, as MMHuman3D does.
As in ExPose, OpenPose's ``neck``/``mid_hip`` and the datasets' hips are identified with the SMPL-X
``neck``/``pelvis``/hip joints.

Project-wide, HDF5 files store keypoints in the ``smplx`` convention (144 points).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType

import numpy as np


def _smplx_joint_names() -> list[str]:
    """``smplx.joint_names.JOINT_NAMES`` without running ``smplx/__init__.py``, which imports torch
    (~200 MB and ~1 s that `expose preprocess` and the keypoint tables do not need)."""
    loaded = sys.modules.get("smplx.joint_names")
    if loaded is None:
        package = importlib.util.find_spec("smplx")
        if package is None or not package.submodule_search_locations:
            from smplx.joint_names import JOINT_NAMES  # let the import error say what is missing

            return list(JOINT_NAMES)
        path = Path(list(package.submodule_search_locations)[0]) / "joint_names.py"
        spec = importlib.util.spec_from_file_location("_expose_smplx_joint_names", path)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
    return list(loaded.JOINT_NAMES)


_SMPLX_144 = _smplx_joint_names()

_SIDES = ("left", "right")


def _hand21(side: str, root: str = "wrist") -> list[str]:
    """OpenPose / FreiHAND hand order: wrist, then thumb, index, middle, ring, pinky (base to tip).

    In whole-body sets the hand's own wrist point duplicates the body's; there it is named
    ``<side>_hand_root`` and is not merged into ``smplx`` (as MMHuman3D drops it).
    """
    names = [f"{side}_{root}"]
    for finger in ("thumb", "index", "middle", "ring", "pinky"):
        names += [f"{side}_{finger}1", f"{side}_{finger}2", f"{side}_{finger}3", f"{side}_{finger}"]
    return names


#: The 68 iBUG face landmarks (OpenPose face, COCO-WholeBody face) in SMPL-X names: the 17
#: contour points, then the 51 inner landmarks in the order the ``smplx`` package emits them.
FACE68 = list(_SMPLX_144[127:144]) + list(_SMPLX_144[76:127])

COCO17 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
]
FEET6 = ["left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel"]
OPENPOSE25 = [
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", *FEET6,
]
OPENPOSE_FACE70 = FACE68 + ["right_pupil", "left_pupil"]
LSP14 = [
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head_top",
]
#: Order of ``J_regressor_h36m.npy`` (SPIN/MMHuman3D 'h36m'); ``H36M_TO_J14`` picks LSP-14 from it.
H36M17 = [
    "pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle",
    "spine_h36m", "thorax", "head_h36m", "head_top", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
]
H36M_TO_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
PW3D18 = [
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
]
SPIN_SMPLX24 = LSP14 + [
    "pelvis", "thorax", "spine_h36m", "jaw_h36m", "head_h36m", "nose", "left_eye", "right_eye",
    "left_ear", "right_ear",
]
#: Stirling/ESRC 7 scan landmarks in SMPL-X landmark names (iBUG 36, 39, 42, 45, 33, 48, 54).
FACE3D7 = ["right_eye1", "right_eye4", "left_eye4", "left_eye1", "nose_middle", "right_mouth_1", "left_mouth_1"]
#: smplx's MANO output: 16 joints (wrist, index, middle, pinky, ring, thumb) + 5 tips.
MANO21 = ["right_wrist"] + [
    f"right_{f}{k}" for f in ("index", "middle", "pinky", "ring", "thumb") for k in (1, 2, 3)
] + ["right_thumb", "right_index", "right_middle", "right_ring", "right_pinky"]
#: FLAME joints (root, neck, jaw, eyes) + 51 landmarks + 17 contour points (smplx FLAME output).
FLAME73 = ["head", "neck", "jaw", "left_eye_smplhf", "right_eye_smplhf"] + list(_SMPLX_144[76:144])


@dataclass(frozen=True)
class KeypointConvention:
    """An ordered set of named keypoints."""

    name: str
    names: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"convention {self.name}: duplicate names {dup}")
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(self.names)})

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self._index[name]

    def __contains__(self, name: str) -> bool:
        return name in self._index

    @functools.cached_property
    def flip_permutation(self) -> np.ndarray:
        """``perm`` (computed once) such that ``kps[..., perm, :]`` (with x mirrored) is the left-right flipped set."""
        perm = []
        for n in self.names:
            other = _swap_side(n)
            perm.append(self._index.get(other, self._index[n]))
        return np.array(perm, dtype=np.int64)


def _swap_side(name: str) -> str:
    for a, b in (("left", "right"), ("right", "left")):
        if name.startswith(a + "_") or f"_{a}_" in name or name.endswith("_" + a):
            return name.replace(a, b, 1)
    return name


#: Every convention by name, built once and read-only.
CONVENTIONS: Mapping[str, KeypointConvention] = MappingProxyType({
    c.name: c
    for c in (
        KeypointConvention("smplx", tuple(_SMPLX_144)),
        KeypointConvention("coco", tuple(COCO17)),
        KeypointConvention("coco_wholebody", tuple(COCO17 + FEET6 + FACE68 + _hand21("left", "hand_root") + _hand21("right", "hand_root"))),
        KeypointConvention("openpose_25", tuple(OPENPOSE25)),
        KeypointConvention("openpose_hand_21", tuple(_hand21("right"))),
        KeypointConvention("openpose_face_70", tuple(OPENPOSE_FACE70)),
        KeypointConvention("openpose_137", tuple(OPENPOSE25 + _hand21("left", "hand_root") + _hand21("right", "hand_root") + OPENPOSE_FACE70)),
        KeypointConvention("lsp", tuple(LSP14)),
        KeypointConvention("h36m", tuple(H36M17)),
        KeypointConvention("freihand", tuple(_hand21("right"))),
        KeypointConvention("mano", tuple(MANO21)),
        KeypointConvention("flame_73", tuple(FLAME73)),
        KeypointConvention("face3d", tuple(FACE3D7)),
        KeypointConvention("pw3d", tuple(PW3D18)),
        KeypointConvention("spin_smplx", tuple(SPIN_SMPLX24)),
        # SMPL's 24 joints: SMPL-X's first 22, then SMPL's own hand joints (no SMPL-X counterpart).
        KeypointConvention("smpl", tuple(_SMPLX_144[:22]) + ("left_hand", "right_hand")),
        # datasets.md calls the H3.6M raw 17-joint order 'h36m_smplx'; it is the same order as 'h36m'.
        KeypointConvention("h36m_smplx", tuple(H36M17)),
    )
})


def get_convention(name: str) -> KeypointConvention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown keypoint convention {name!r}; known: {', '.join(sorted(CONVENTIONS))}") from None


#: Names that two DATASET conventions use for the same joint (MMHuman3D names both ``neck_extra``):
#: H3.6M's ``thorax`` is LSP-14's (and OpenPose's, 3DPW's) ``neck``. Used only when the destination
#: lacks the source's own name and its alias is not filled by an exact match, and never to or
#: from ``smplx``, whose ``neck`` is the body model's skeleton joint.
NAME_ALIASES: dict[str, tuple[str, ...]] = {"thorax": ("neck",), "neck": ("thorax",)}
_NO_ALIASES = frozenset({"smplx"})


@cache
def mapping(src: str, dst: str) -> tuple[np.ndarray, np.ndarray]:
    """``(src_idx, dst_idx)``: the joints both conventions share (by name, then by
    :data:`NAME_ALIASES`), as index arrays."""
    s, d = get_convention(src), get_convention(dst)
    pairs = [(i, d.index(n)) for i, n in enumerate(s.names) if n in d]
    if src not in _NO_ALIASES and dst not in _NO_ALIASES:
        filled = {j for _, j in pairs}
        for i, n in enumerate(s.names):
            if n in d:
                continue
            for alias in NAME_ALIASES.get(n, ()):
                if alias in d and d.index(alias) not in filled and alias not in s:
                    pairs.append((i, d.index(alias)))
                    filled.add(d.index(alias))
                    break
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    src_idx, dst_idx = (np.array(x, dtype=np.int64) for x in zip(*pairs, strict=True))
    return src_idx, dst_idx


def convert_keypoints(kps, src: str, dst: str, fill: float = 0.0):
    """Convert ``[..., K_src, D]`` keypoints to ``[..., K_dst, D]`` through shared names.

    Returns ``(out, mask)``; ``mask[K_dst]`` is True where the destination joint exists in ``src``.
    Missing joints are ``fill`` (0: confidence 0 too). Works for numpy arrays and torch tensors.
    """
    src_idx, dst_idx = mapping(src, dst)
    n_dst = len(get_convention(dst))
    mask = np.zeros(n_dst, dtype=bool)
    mask[dst_idx] = True
    if hasattr(kps, "new_full"):  # torch
        import torch

        out = kps.new_full((*kps.shape[:-2], n_dst, kps.shape[-1]), fill)
        out[..., torch.as_tensor(dst_idx), :] = kps[..., torch.as_tensor(src_idx), :]
        return out, mask
    kps = np.asarray(kps)
    out = np.full((*kps.shape[:-2], n_dst, kps.shape[-1]), fill, dtype=kps.dtype)
    out[..., dst_idx, :] = kps[..., src_idx, :]
    return out, mask


def flip_keypoints(kps, convention: str, image_width: float | None = None):
    """Mirror ``[..., K, D]`` keypoints left-right: swap sides and negate x (or ``x -> W - 1 - x``)."""
    perm = get_convention(convention).flip_permutation
    out = kps[..., perm, :].copy() if isinstance(kps, np.ndarray) else kps[..., perm, :].clone()
    out[..., 0] = -out[..., 0] if image_width is None else image_width - 1 - out[..., 0]
    return out
