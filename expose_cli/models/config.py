"""Typed model configs; the defaults are the four configs of MMHuman3D's ExPose
(``configs/expose/{hrnet_hmr_expose_body,resnet18_hmr_expose_hand,resnet18_hmr_expose_face,expose}.py``).

Override from TOML (``[body]``, ``[hand]``, ``[face]``, ``[attention]`` tables) or from the command
line (``body.hidden=[32,32]``).
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from expose_cli.errors import ExposeError
from expose_cli.kinds import KINDS, kind_names, part_modules


@dataclass
class BodyConfig:
    """HRNet-W48 + body head (341 parameters: 6D rotations, 10 betas, 10 expression, camera)."""

    hrnet_width: int = 48
    feature_dim: int = 2048
    hidden: tuple[int, ...] = (1024, 1024)
    activation: str = "none"
    dropout: float = 0.5
    num_stages: int = 3
    num_betas: int = 10
    num_expression: int = 10
    camera_mean_scale: float = 0.9
    img_res: int = KINDS["body"].img_res


@dataclass
class HandConfig:
    """ResNet-18 + hand head (109 parameters: wrist 6D, 15 finger 6D, 10 betas, camera)."""

    resnet_width: int = 64
    hidden: tuple[int, ...] = (1024, 1024)
    activation: str = "relu"
    dropout: float = 0.5
    num_stages: int = 3
    num_betas: int = 10
    camera_mean_scale: float = 0.9
    img_res: int = KINDS["hand"].img_res


@dataclass
class FaceConfig:
    """ResNet-18 + face head (165 parameters: head 6D, jaw 6D, 100 betas, 50 expression, camera)."""

    resnet_width: int = 64
    hidden: tuple[int, ...] = (1024, 1024)
    activation: str = "relu"
    dropout: float = 0.5
    num_stages: int = 3
    num_betas: int = 100
    num_expression: int = 50
    camera_mean_scale: float = 8.0
    img_res: int = KINDS["face"].img_res


@dataclass
class AttentionConfig:
    """Body-driven attention of the full model (``crop_cfg`` of ``expose.py``)."""

    hand_scale_factor: float = 3.0
    hand_crop_size: int = 224
    face_scale_factor: float = 2.0
    face_crop_size: int = 256
    condition_hand_wrist_pose: bool = True
    condition_hand_finger_pose: bool = True
    condition_face_jaw_pose: bool = True
    condition_face_expression: bool = True
    freeze_body: bool = True  # frozen_batchnorm=True: training updates only the hand and face networks


@dataclass
class ModelConfig:
    """One of the four models: ``kind`` is ``body``, ``hand``, ``face`` or ``expose``."""

    kind: str = "expose"
    body: BodyConfig = field(default_factory=BodyConfig)
    hand: HandConfig = field(default_factory=HandConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)

    @property
    def img_res(self) -> int:
        """Side (px) of the square person crop the model takes: ``body.img_res`` for the body and the
        full model (whose hand and face crops are ``attention``'s), else the hand's or the face's."""
        return getattr(self, KINDS[self.kind].config_section).img_res

    def crop_sides(self) -> dict[str, int]:
        """The side (px) of the square crop each part network takes, by part, in the order the model
        runs them: the model's own network takes :attr:`img_res`, the full model's hand and face
        networks ``attention``'s crops."""
        att = self.attention
        part_crop = {"hand": att.hand_crop_size, "face": att.face_crop_size}
        return {part: self.img_res if backbone == "backbone" else part_crop[part]
                for part, (backbone, _) in part_modules(self.kind).items()}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        cfg = cls(kind=data.get("kind", "expose"))
        for section in ("body", "hand", "face", "attention"):
            if section in data:
                _update(getattr(cfg, section), data[section], section)
        return cfg


def preset(name: str) -> ModelConfig:
    """The full-size config of a seed model: ``body``, ``hand``, ``face`` or ``expose``."""
    if name not in KINDS:
        raise ExposeError(f"unknown model preset {name!r}", hint=f"use one of {kind_names()}")
    return ModelConfig(kind=name)


def small_config(kind: str) -> ModelConfig:
    """A tiny config of the same structure, for fast tests and the demo's speed."""
    cfg = preset(kind)
    cfg.body.hrnet_width, cfg.body.feature_dim, cfg.body.hidden = 8, 64, (32, 32)
    cfg.hand.resnet_width, cfg.hand.hidden = 8, (32, 32)
    cfg.face.resnet_width, cfg.face.hidden = 8, (32, 32)
    return cfg


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _coerce(current: Any, value: Any, where: str) -> Any:
    """``value`` converted to the type of the field's ``current`` value, or a clear error."""
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ExposeError(f"{where} must be true or false, got {value!r}")
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)):
            raise ExposeError(f"{where} must be a list, got {value!r}", hint=f"e.g. {where}=[1024, 1024]")
        return tuple(_coerce(current[0] if current else 0, v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ExposeError(f"{where} must be an integer, got {value!r}")
        return int(value)
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExposeError(f"{where} must be a number, got {value!r}")
        return float(value)
    if isinstance(current, str) and not isinstance(value, str):
        raise ExposeError(f"{where} must be a string, got {value!r}")
    return value


def _update(obj: Any, values: dict, where: str) -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in names:
            raise ExposeError(f"unknown config field {where}.{key}", hint=f"fields: {', '.join(names)}")
        setattr(obj, key, _coerce(getattr(obj, key), value, f"{where}.{key}"))


SECTIONS = ("body", "hand", "face", "attention")


def read_toml(path: Path) -> dict:
    """A TOML config file as a dict; a file that cannot be read or parsed is one line naming it."""
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ExposeError(f"cannot read config: {exc}", path=path) from exc


def parse_value(raw: str) -> Any:
    """A ``--set`` value: a Python/TOML literal (numbers, lists) or else the string; boolean
    spellings (true/false/yes/no/on/off) stay strings, which :func:`_coerce` turns into booleans
    where the field is one."""
    raw = raw.strip()
    if raw.lower() in ("true", "false", "yes", "no", "on", "off"):
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def apply_overrides(cfg: ModelConfig, toml_path: str | Path | None = None, overrides: list[str] | tuple = ()) -> ModelConfig:
    """Update ``cfg`` in place from a TOML file, then from ``section.field=value`` strings."""
    if toml_path is not None:
        path = Path(toml_path)
        for section, values in read_toml(path).items():
            if section not in SECTIONS or not isinstance(values, dict):
                raise ExposeError(f"unknown config section [{section}]", path=path,
                                  hint="sections: [body], [hand], [face], [attention]")
            try:
                _update(getattr(cfg, section), values, section)
            except ExposeError as exc:
                raise ExposeError(exc.reason, hint=exc.hint, path=path) from None
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, _, name = key.strip().partition(".")
        if not sep or section not in SECTIONS or not name:
            raise ExposeError(f"bad override {item!r}", hint="write section.field=value, e.g. body.dropout=0.3")
        _update(getattr(cfg, section), {name: parse_value(raw)}, section)
    return cfg


def load_config(preset_name: str, toml_path: str | Path | None = None, overrides: list[str] | tuple = ()) -> ModelConfig:
    """A preset, updated from a TOML file, then from ``section.field=value`` overrides."""
    return apply_overrides(preset(preset_name), toml_path, overrides)
