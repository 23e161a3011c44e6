"""Typed configuration of the training data: members, mixing ratios, crop size, augmentations.

Defaults are the seed's (MMHuman3D v0.11.0 ``configs/expose/*.py``); :func:`data_preset` gives the
kinds' recipes (:mod:`expose_cli.training.recipes`). Everything is a plain dataclass, overridable field by field (TOML, ``--set``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class AugmentConfig:
    """Per-sample augmentation parameters (applied in this order, see :mod:`.augment`).

    ``jitter_factor``: the box centre moves by up to ``jitter_factor * scale`` px
    (``jitter_dist`` "uniform" or "normal"); 0 (<= 1e-3) turns it off.
    ``flip_prob``: probability of a horizontal mirror.
    ``scale_factor``: the box side is multiplied by ``clip(1 + scale_factor * N(0, 1), 1 +- scale_factor)``.
    ``rot_factor`` (degrees) and ``rot_prob``: with probability ``rot_prob`` the crop rotates by
    ``clip(rot_factor * N(0, 1), +-2 rot_factor)`` degrees.
    ``rotate_full_image``: the full model's ``Rotation`` step (the whole image and ``ori_img`` rotate).
    ``noise_factor``: each channel is multiplied by U(1 - f, 1 + f).
    ``low_res_factors``: a down/up-sampling factor drawn uniformly from these (a single factor: off).
    """

    jitter_factor: float = 0.0
    jitter_dist: str = "uniform"
    flip_prob: float = 0.5
    scale_factor: float = 0.25
    rot_factor: float = 30.0
    rot_prob: float = 0.6
    rotate_full_image: bool = False
    noise_factor: float = 0.4
    low_res_factors: tuple[float, ...] = (1.0,)
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class DataConfig:
    """What a training run reads.

    ``members``: dataset names (see :data:`expose_cli.io.catalog.MEMBERS`; any other name
    ``X`` reads ``preprocessed_datasets/X_train.h5``, and a path ending in ``.h5`` is used as is).
    ``ratios``: mixing weights, one per member (normalised by their sum).
    ``img_res``: the square crop side (px). ``augment``: :class:`AugmentConfig`.
    ``skip_keypoints2d``: members (as written in ``members``) whose 2D keypoints are not trained:
    each of their samples has its ``keypoints2d`` zeroed and ``has_keypoints2d`` 0. The seed's
    Human3.6M file has no 2D keypoints (MMHuman3D's ``h36m_smplx`` converter computes them but does
    not store them), so by default ``h36m_smplx`` trains 3D keypoints only, as there;
    ``--set data.skip_keypoints2d=[]`` trains every member's 2D keypoints.
    """

    members: tuple[str, ...] = ("curated_fits", "spin_smplx", "h36m_smplx")
    ratios: tuple[float, ...] = (0.08, 0.12, 0.80)
    img_res: int = 256
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    skip_keypoints2d: tuple[str, ...] = ("h36m_smplx",)

    def __post_init__(self) -> None:
        if len(self.members) != len(self.ratios):
            raise ValueError(f"{len(self.members)} members but {len(self.ratios)} ratios")
        if not self.members or min(self.ratios) < 0 or sum(self.ratios) <= 0:
            raise ValueError("ratios must be non-negative with a positive sum")


def data_preset(kind: str) -> DataConfig:
    """The seed's data recipe for ``kind`` in ``body``, ``hand``, ``face``, ``expose`` (the full model):
    ``RECIPES[kind].data`` of :mod:`expose_cli.training.recipes`."""
    from expose_cli.kinds import kind_names
    from expose_cli.training.recipes import (
        RECIPES,  # it builds its configs from this module's classes
    )

    if kind not in RECIPES:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {kind_names()}")
    return RECIPES[kind].data


def with_members(cfg: DataConfig, members: tuple[str, ...], ratios: tuple[float, ...] | None = None) -> DataConfig:
    """``cfg`` reading other members (equal ratios unless given)."""
    ratios = ratios if ratios is not None else tuple(1.0 for _ in members)
    return replace(cfg, members=tuple(members), ratios=tuple(float(r) for r in ratios))
