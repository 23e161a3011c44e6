"""The typed configuration of a training run; defaults are the seed's four configs
(MMHuman3D v0.11.0 ``configs/expose/*.py``, training-reference §1).

A :class:`RunConfig` has the sections ``model`` (the networks: ``[body]``, ``[hand]``, ``[face]``,
``[attention]`` as in :mod:`expose_cli.models.config`), ``data`` (:class:`DataConfig`, with
``[data.augment]``), ``train`` (:class:`TrainConfig`) and ``loss`` (:class:`LossConfig`).
Override from TOML (those tables) or ``--set section.field=value`` (``train.lr=1e-5``,
``body.hidden=[32,32]``, ``data.augment.flip_prob=0``).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expose_cli.errors import ExposeError
from expose_cli.kinds import KINDS, kind_names
from expose_cli.models.config import (
    ModelConfig,
    _coerce,
    parse_value,
    preset,
    read_toml,
    small_config,
)

PRECISIONS = ("fp32", "bf16", "fp16")
#: Train fields that may be 0 (meaning this) but never negative.
NON_NEGATIVE = {"max_steps": "no limit, all the epochs", "workers": "load data in the main process",
                "grad_clip": "no clipping", "val_every": "never validate", "save_every": "no epoch_K.pth",
                "last_every": "last.pth only at the end", "log_every": "log every step"}


@dataclass
class LossConfig:
    """Weights of the loss terms (0 turns a term off). ``betas`` is the seed's 0.001 on the betas
    MSE; ``shape_prior`` the threshold prior with ``shape_prior_margin``; ``hand_crop`` and
    ``face_crop`` the full model's crop terms."""

    keypoints3d: float = 1.0
    keypoints2d: float = 1.0
    global_orient: float = 1.0
    body_pose: float = 1.0
    jaw_pose: float = 1.0
    hand_pose: float = 1.0
    betas: float = 0.001
    expression: float = 1.0
    shape_prior: float = 1.0
    shape_prior_margin: float = 3.0
    hand_crop: float = 0.0
    face_crop: float = 0.0


def loss_preset(kind: str) -> LossConfig:
    """The seed's loss weights of ``kind`` (``RECIPES[kind].loss`` of :mod:`expose_cli.training.recipes`)."""
    from expose_cli.training.recipes import RECIPES

    return LossConfig(**RECIPES[kind].loss)


@dataclass
class TrainConfig:
    """The loop. ``epochs`` and the per-epoch lr ``milestones`` x ``gamma`` (no warm-up);
    ``max_steps`` > 0 stops earlier. ``save_every`` epochs an ``epoch_K.pth``, ``last_every`` steps a
    ``last.pth``; ``val_every`` epochs a validation on ``val_set`` (an `expose eval` benchmark, or
    ``none``), read from ``val_data`` when given. ``init``: ``auto`` (ImageNet backbones; the full
    model: the three part checkpoints), ``none`` (from scratch) or a checkpoint path."""

    epochs: int = 100
    max_steps: int = 0
    batch_size: int = 48
    workers: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (60, 100)
    gamma: float = 0.1
    precision: str = "fp32"
    grad_clip: float = 0.0
    val_every: int = 10
    val_set: str = "3dpw"
    val_data: str = ""
    val_limit: int = 0
    save_every: int = 10
    last_every: int = 500
    log_every: int = 50
    seed: int = 0
    max_bad_steps: int = 20
    find_unused_parameters: bool = False
    init: str = "auto"
    #: BatchNorm statistics fixed while training (the seed's ``norm_eval=True``, right for ImageNet
    #: backbones); false lets them train, as a network started with ``init = "none"`` needs: its fixed
    #: statistics (mean 0, variance 1) normalise nothing and the small HRNet's features vanish
    #: (std 4e-4 at its output). Per process under DDP (no synchronised BatchNorm).
    norm_eval: bool = True


def _data_preset(kind: str):
    from expose_cli.training.data_config import data_preset

    return data_preset(kind)


@dataclass
class RunConfig:
    """Everything a run needs, resolved (it is saved as ``config.toml``-like JSON in the run dir)."""

    kind: str
    model: ModelConfig
    data: Any
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "model": self.model.to_dict(), "data": dataclasses.asdict(self.data),
                "train": dataclasses.asdict(self.train), "loss": dataclasses.asdict(self.loss)}

    @classmethod
    def from_dict(cls, obj: dict) -> RunConfig:
        cfg = run_preset(obj["kind"])
        cfg.model = ModelConfig.from_dict(obj["model"])
        for section in ("data", "train", "loss"):
            for key, value in _flatten(obj.get(section, {})).items():
                set_field(cfg, f"{section}.{key}", value)
        return cfg


def run_preset(kind: str, small: bool = False) -> RunConfig:
    """The seed's config of ``kind`` (``small``: tiny network widths of the same structure)."""
    if kind not in KINDS:
        raise ExposeError(f"unknown model {kind!r}", hint=f"use one of {kind_names()}")
    from expose_cli.training.recipes import RECIPES

    model = small_config(kind) if small else preset(kind)
    recipe = RECIPES[kind]
    train = TrainConfig(batch_size=recipe.batch_size, val_set=recipe.val_set,
                        find_unused_parameters=recipe.find_unused_parameters)
    return RunConfig(kind, model, _data_preset(kind), train, loss_preset(kind))


def _flatten(obj: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


MODEL_SECTIONS = ("body", "hand", "face", "attention")


def _set_in(obj: Any, names: list[str], value: Any, where: str) -> Any:
    """A copy of dataclass ``obj`` (or ``obj`` itself, for mutable ones) with ``names`` set."""
    fields = {f.name for f in dataclasses.fields(obj)}
    if names[0] not in fields:
        raise ExposeError(f"unknown config field {where}", hint=f"fields here: {', '.join(sorted(fields))}")
    current = getattr(obj, names[0])
    if len(names) > 1:
        if not dataclasses.is_dataclass(current):
            raise ExposeError(f"unknown config field {where}")
        new = _set_in(current, names[1:], value, where)
    else:
        if isinstance(current, tuple) and isinstance(value, (list, str)) and _holds_strings(obj, names[0]):
            new = (value,) if isinstance(value, str) else tuple(str(v) for v in value)  # a bare name: one member
        else:
            new = _coerce(current, value, where)
    if obj.__dataclass_params__.frozen:
        # A copy with the field set, not validated yet: members and ratios change one at a time;
        # check() validates the result.
        obj = copy.copy(obj)
        object.__setattr__(obj, names[0], new)
        return obj
    setattr(obj, names[0], new)
    return obj


def _holds_strings(obj: Any, name: str) -> bool:
    """Field ``name`` of dataclass ``obj`` is a ``tuple[str, ...]`` (also when it is empty now)."""
    current = getattr(obj, name)
    if current:
        return isinstance(current[0], str)
    kind = next(f.type for f in dataclasses.fields(obj) if f.name == name)
    return "str" in str(kind)


def set_field(cfg: RunConfig, key: str, value: Any) -> None:
    """Set ``section.field[.sub]`` (``train.lr``, ``body.hidden``, ``data.augment.flip_prob``).
    ``data.members`` takes a list or one bare name (``data.members=synth_hand``); members of another
    count than ``data.ratios`` get equal ratios until ``data.ratios`` is set."""
    section, *names = key.strip().split(".")
    if not names:
        raise ExposeError(f"bad setting {key!r}", hint="write section.field=value, e.g. train.lr=1e-5")
    if section in MODEL_SECTIONS:
        _set_in(getattr(cfg.model, section), names, value, key)
    elif section in ("data", "train", "loss"):
        setattr(cfg, section, _set_in(getattr(cfg, section), names, value, key))
        if names == ["members"] and len(cfg.data.ratios) != len(cfg.data.members):  # equal shares unless set
            cfg.data = _set_in(cfg.data, ["ratios"], [1.0] * len(cfg.data.members), "data.ratios")
    else:
        raise ExposeError(f"unknown config section {section!r} in {key!r}",
                          hint="sections: train, loss, data, body, hand, face, attention")


def apply_settings(cfg: RunConfig, toml_path: str | Path | None = None, settings: list[str] | tuple = ()) -> RunConfig:
    """Update ``cfg`` from a TOML file (tables ``[train]``, ``[loss]``, ``[data]``, ``[body]``...),
    then from ``section.field=value`` strings."""
    if toml_path is not None:
        path = Path(toml_path)
        for key, value in _flatten(read_toml(path)).items():
            try:
                set_field(cfg, key, value)
            except ExposeError as exc:
                raise ExposeError(exc.reason, hint=exc.hint, path=path) from None
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ExposeError(f"bad setting {item!r}", hint="write section.field=value, e.g. train.lr=1e-5")
        set_field(cfg, key, parse_value(raw))
    check(cfg)
    return cfg


def check(cfg: RunConfig) -> None:
    """Values no run can use: one line each."""
    t = cfg.train
    if t.precision not in PRECISIONS:
        raise ExposeError(f"train.precision must be one of {', '.join(PRECISIONS)}, not {t.precision!r}")
    if t.batch_size < 1 or t.epochs < 1:
        raise ExposeError("train.batch_size and train.epochs must be >= 1", exit_code=2)
    if t.lr <= 0:
        raise ExposeError(f"train.lr must be > 0, not {t.lr}")
    for name, zero in NON_NEGATIVE.items():
        if getattr(t, name) < 0:
            raise ExposeError(f"train.{name} must be >= 0 (0: {zero}), not {getattr(t, name)}", exit_code=2,
                              hint="use 0 or more")
    post_init = getattr(cfg.data, "__post_init__", None)
    if post_init is not None:
        try:
            post_init()
        except ValueError as exc:
            raise ExposeError(f"data: {exc}", hint="give data.members and data.ratios of the same length") from None
    _check_img_res(cfg)


def _check_img_res(cfg: RunConfig) -> None:
    """The training crops' side must be the one the model declares (its checkpoint records it and
    inference crops at it): a model trained on 224 px crops is never saved declaring 256."""
    section = KINDS[cfg.model.kind].config_section
    if cfg.data.img_res != cfg.model.img_res:
        raise ExposeError(f"data.img_res is {cfg.data.img_res} px but the {cfg.kind} model takes "
                          f"{section}.img_res = {cfg.model.img_res} px crops", exit_code=2,
                          hint=f"set data.img_res and {section}.img_res to the same side")
