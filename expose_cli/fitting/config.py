"""The fit's typed configuration: three stages of L-BFGS and the loss weights.

Two presets. ``compat="mmhuman3d"`` is MMHuman3D's ``configs/smplify/smplifyx.py`` as its
``SMPLifyX`` registrant runs it (stages, ``LBFGS(max_iter=20, lr=1e-2, strong_wolfe)``, ftol 1e-4,
one epoch as ``tools/smplify.py`` runs it, keypoint weights 1 (2D) / 10 (3D) with sigma 100,
shape prior 1, joint prior 20 with smooth spine x20, temporal smoothing 0, ``img_res`` 224).
``compat="none"`` (the default) keeps its stages and optimiser and changes the formulation
(docs/fit.md, "Differences"). Override from TOML (tables ``[fit]``, ``[stage1]``..``[stage3]``) or
``--set fit.lr=0.05``, ``--set stage2.num_iter=10``; ``fit.compat`` picks the preset the other
settings then change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expose_cli.errors import ExposeError
from expose_cli.models.config import _coerce, parse_value, read_toml

COMPAT = ("none", "mmhuman3d")
POSE_PRIORS = ("none", "gmm")
#: The parameters a stage may fit, in the order of ``Stage``'s ``fit_*`` flags.
PARAMS = ("global_orient", "transl", "body_pose", "betas", "left_hand_pose", "right_hand_pose",
          "expression", "jaw_pose")


@dataclass
class Stage:
    """One stage: which parameters move, the keypoint weights per part, L-BFGS steps."""

    num_iter: int = 1
    fit_global_orient: bool = True
    fit_transl: bool = True
    fit_body_pose: bool = False
    fit_betas: bool = False
    fit_left_hand_pose: bool = False
    fit_right_hand_pose: bool = False
    fit_expression: bool = False
    fit_jaw_pose: bool = False
    body_weight: float = 1.0
    hand_weight: float = 1.0
    face_weight: float = 1.0
    use_shoulder_hip_only: bool = False

    def fitted(self) -> tuple[str, ...]:
        return tuple(p for p in PARAMS if getattr(self, f"fit_{p}"))


def smplifyx_stages() -> list[Stage]:
    """MMHuman3D's three SMPLify-X stages: torso alignment (10 steps), body and shape (5), then
    hands too (3)."""
    return [
        Stage(num_iter=10, body_weight=5.0, hand_weight=0.0, face_weight=0.0, use_shoulder_hip_only=True),
        Stage(num_iter=5, fit_body_pose=True, fit_betas=True, body_weight=5.0, hand_weight=0.0, face_weight=0.0),
        Stage(num_iter=3, fit_body_pose=True, fit_betas=True, fit_left_hand_pose=True, fit_right_hand_pose=True,
              body_weight=10.0, hand_weight=1.0, face_weight=1.0),
    ]


@dataclass
class FitConfig:
    """Weights are dimensionless multipliers of the terms in :mod:`expose_cli.fitting.losses`."""

    compat: str = "none"
    num_epochs: int = 1
    max_iter: int = 20              # L-BFGS inner iterations per step
    lr: float = 1e-2
    line_search: str = "strong_wolfe"
    ftol: float = 1e-4              # stop a stage when the loss changes relatively less
    keypoints2d_weight: float = 1.0
    keypoints3d_weight: float = 10.0
    sigma2d: float = 100.0          # compat: on squared normalised residuals; else pixels
    sigma3d: float = 100.0          # compat: on squared residuals in metres; else metres
    shape_prior_weight: float = 1.0
    joint_prior_weight: float = 20.0
    smooth_spine_weight: float = 20.0  # on top of joint_prior_weight
    temporal_weight: float = 0.0
    start_pull_weight: float = 0.0
    pose_prior: str = "none"        # "gmm": SMPLify's gmm_08.pkl (imported), MMHuman3D's MaxMixturePrior
    pose_prior_weight: float = 4.78 ** 2  # MMHuman3D's loss_weight for it
    img_res: float = 224.0          # compat only: the normalisation size, independent of the camera
    one_betas_per_video: bool = False
    stage1: Stage = field(default_factory=lambda: smplifyx_stages()[0])
    stage2: Stage = field(default_factory=lambda: smplifyx_stages()[1])
    stage3: Stage = field(default_factory=lambda: smplifyx_stages()[2])

    @property
    def mmhuman3d(self) -> bool:
        return self.compat == "mmhuman3d"

    def stages(self) -> list[Stage]:
        return [self.stage1, self.stage2, self.stage3]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def preset(compat: str = "none") -> FitConfig:
    """MMHuman3D's values (``compat="mmhuman3d"``), or the corrected default."""
    if compat not in COMPAT:
        raise ExposeError(f"fit.compat must be one of {', '.join(COMPAT)}, not {compat!r}", exit_code=2)
    if compat == "mmhuman3d":
        return FitConfig(compat="mmhuman3d")
    return FitConfig(keypoints2d_weight=20.0, keypoints3d_weight=1e4, sigma2d=20.0, sigma3d=0.5,
                     smooth_spine_weight=1.0, start_pull_weight=0.5)


SECTIONS = ("fit", "stage1", "stage2", "stage3")


def _flat_items(toml: dict, path: Path) -> list[tuple[str, Any]]:
    items = []
    for section, values in toml.items():
        if section not in SECTIONS or not isinstance(values, dict):
            raise ExposeError(f"unknown config section [{section}]", hint=f"sections: {', '.join(SECTIONS)}",
                              path=path, exit_code=2)
        items += [(f"{section}.{k}", v) for k, v in values.items()]
    return items


def _parse_settings(settings: list[str] | tuple) -> list[tuple[str, Any]]:
    items = []
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ExposeError(f"bad setting {item!r}", hint="write section.field=value, e.g. fit.lr=0.05 or "
                              "stage2.num_iter=10", exit_code=2)
        items.append((key.strip(), parse_value(raw)))
    return items


def set_field(cfg: FitConfig, key: str, value: Any) -> None:
    """Set ``fit.<field>`` or ``stageN.<field>``."""
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        raise ExposeError(f"unknown config section {section!r} in {key!r}", hint=f"sections: {', '.join(SECTIONS)}",
                          exit_code=2)
    obj = cfg if section == "fit" else getattr(cfg, section)
    names = {f.name for f in dataclasses.fields(obj)} - set(SECTIONS)
    if name not in names:
        raise ExposeError(f"unknown config field {key}", hint=f"fields here: {', '.join(sorted(names))}", exit_code=2)
    setattr(obj, name, _coerce(getattr(obj, name), value, key))


def load_config(toml_path: str | Path | None = None, settings: list[str] | tuple = ()) -> FitConfig:
    """The preset named by ``fit.compat`` (TOML, then ``--set``; default ``none``), updated from the
    TOML file's tables and then the ``section.field=value`` settings."""
    items: list[tuple[str, Any]] = []
    if toml_path is not None:
        items += _flat_items(read_toml(Path(toml_path)), Path(toml_path))
    items += _parse_settings(settings)
    compat = "none"
    for key, value in items:
        if key == "fit.compat":
            compat = str(value)
    cfg = preset(compat)
    for key, value in items:
        if key != "fit.compat":
            set_field(cfg, key, value)
    check(cfg)
    return cfg


def check(cfg: FitConfig) -> None:
    """Values no fit can use: one line each."""
    if cfg.num_epochs < 0 or cfg.max_iter < 1 or any(s.num_iter < 0 for s in cfg.stages()):
        raise ExposeError("fit.num_epochs and stageN.num_iter must be >= 0, fit.max_iter >= 1", exit_code=2)
    if cfg.lr <= 0 or cfg.sigma2d <= 0 or cfg.sigma3d <= 0 or cfg.img_res <= 1:
        raise ExposeError("fit.lr, fit.sigma2d and fit.sigma3d must be > 0, fit.img_res > 1", exit_code=2)
    if cfg.pose_prior not in POSE_PRIORS:
        raise ExposeError(f"fit.pose_prior must be one of {', '.join(POSE_PRIORS)}, not {cfg.pose_prior!r}",
                          hint="gmm needs `expose import-body-models gmm_08.pkl` first", exit_code=2)
    if cfg.line_search not in ("strong_wolfe", "none"):
        raise ExposeError(f"fit.line_search must be strong_wolfe or none, not {cfg.line_search!r}", exit_code=2)
