"""The seed's training recipe of each model kind (MMHuman3D v0.11.0 ``configs/expose/*.py``,
training-reference §1), keyed by :data:`expose_cli.kinds.KINDS`: the one training table per kind.

:func:`expose_cli.training.config.run_preset` builds a run's config from it; the validation
benchmark's primary metric (:data:`expose_cli.training.validation.PRIMARY`) is derived from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from expose_cli.kinds import KINDS
from expose_cli.training.data_config import AugmentConfig, DataConfig


@dataclass(frozen=True)
class Recipe:
    """How the seed trains one kind. ``val_set``: its validation benchmark (an `expose eval`
    protocol) and ``primary_metric`` the metric that picks ``best.pth``; ``data``: members, ratios and
    augmentations (the crop side is the kind's ``img_res``); ``loss``: the :class:`LossConfig`
    weights that differ from the defaults; ``find_unused_parameters``: DDP looks for parameters that
    get no gradient (the body's HRNet never reads its last stage-3 fusion into branch 1)."""

    batch_size: int
    val_set: str
    primary_metric: str
    data: DataConfig
    loss: Mapping[str, float]
    find_unused_parameters: bool = False


_HAND_FACE_ROTATION = dict(rot_factor=30.0, rot_prob=0.6, noise_factor=0.4)
_HAND_AUG = AugmentConfig(jitter_factor=0.2, jitter_dist="uniform", flip_prob=0.0, scale_factor=0.2,
                          low_res_factors=(1.0, 1.2, 1.5, 2.0, 3.0, 4.0), **_HAND_FACE_ROTATION)
_FACE_AUG = AugmentConfig(jitter_factor=0.2, jitter_dist="uniform", flip_prob=0.5, scale_factor=0.2,
                          low_res_factors=(1.0, 1.2, 1.5, 2.0, 3.0, 4.0, 8.0), **_HAND_FACE_ROTATION)

#: The losses: body all terms; hand 2D keypoints, wrist and finger rotations and the shape prior;
#: face 2D keypoints, head and jaw rotations, expression and the shape prior; the full model the
#: body's plus the two crop terms.
RECIPES: Mapping[str, Recipe] = MappingProxyType({
    "body": Recipe(48, "3dpw", "PA-MPJPE", DataConfig(img_res=KINDS["body"].img_res), {},
                   find_unused_parameters=True),
    "hand": Recipe(64, "freihand", "PA-MPJPE",
                   DataConfig(members=("freihand",), ratios=(1.0,), img_res=KINDS["hand"].img_res, augment=_HAND_AUG),
                   {"keypoints3d": 0.0, "body_pose": 0.0, "jaw_pose": 0.0, "betas": 0.0, "expression": 0.0}),
    "face": Recipe(64, "stirling", "3DRMSE",
                   DataConfig(members=("ffhq",), ratios=(1.0,), img_res=KINDS["face"].img_res, augment=_FACE_AUG),
                   {"keypoints3d": 0.0, "body_pose": 0.0, "hand_pose": 0.0, "betas": 0.0}),
    "expose": Recipe(48, "ehf", "PA-PVE",
                     DataConfig(members=("curated_fits",), ratios=(1.0,), img_res=KINDS["expose"].img_res,
                                augment=AugmentConfig(rotate_full_image=True)),
                     {"hand_crop": 1.0, "face_crop": 1.0}),
})
if tuple(RECIPES) != tuple(KINDS):  # checked at import: a kind without a recipe fails at once
    raise ImportError(f"training recipes {tuple(RECIPES)} do not match the model kinds {tuple(KINDS)}")
