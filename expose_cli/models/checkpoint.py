"""Checkpoints: MMHuman3D's published ones (loaded unchanged) and our own format.

MMHuman3D's keys map one-to-one onto :class:`ExPoseNet` (same module names). Skipped, and reported
once: the body-model buffers (``body_model_train.*``, ``body_model_test.*``: users bring their own
licensed files), HRNet's ``stage4``, ``final_layer`` and ``downsample_stage_*`` (stored but never
run), and the regressor's ``layer_00N`` aliases of ``blocks.N``. The full model's frozen BatchNorms
carry no ``num_batches_tracked``; those counters are filled with 0. Every other key must load.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from expose_cli.errors import ExposeError, MissingFileError
from expose_cli.io.paths import CHECKPOINT_FILES, DataTree
from expose_cli.kinds import KINDS, part_modules
from expose_cli.models.config import ModelConfig, apply_overrides, preset
from expose_cli.models.expose import ExPoseNet, Predictor
from expose_cli.models.model import ExPoseModel
from expose_cli.utils.atomic import atomic_path

FORMAT = "expose-cli-checkpoint"
FORMAT_VERSION = 1

_SKIP = (
    re.compile(r"^body_model_(train|test)\."),
    re.compile(r"^backbone\.(stage4|final_layer|downsample_stage_\d)\."),
    re.compile(r"\.regressor\.module\.layer_\d{3}\."),
)


@dataclass
class LoadReport:
    """What :func:`load_state` did besides copying tensors."""

    kind: str
    source_format: str  # mmhuman3d | expose-cli | state_dict
    skipped: Counter = field(default_factory=Counter)  # key group -> count
    filled: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{n} {g}" for g, n in sorted(self.skipped.items())]
        return "skipped " + ", ".join(parts) if parts else "nothing skipped"


def damage_hint(path: Path) -> str:
    """What to do about an unusable checkpoint: download a published one again; for the user's own
    (e.g. from `expose train`), another checkpoint of its run."""
    if Path(path).name in CHECKPOINT_FILES.values():
        return "download it again: `expose fetch-models`"
    return "use another copy, or another checkpoint of its run (last.pth, best.pth, epoch_K.pth)"


def sniff_checkpoint(path: Path) -> None:
    """One line for a file torch would fail on with its own words: not a ``torch.save`` file at all
    (JSON, text, an image...), or a zip archive cut short or damaged (torch: "internal miniz error")."""
    import zipfile

    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:1] == b"\x80":
        return  # torch.save's legacy (pickle) format
    if head != b"PK\x03\x04":
        what = "empty" if not head else "JSON or text" if head.lstrip()[:1] in (b"{", b"[") or head.isascii() else "another format"
        raise ExposeError(f"not a PyTorch checkpoint ({what}; torch.save writes a zip archive)", path=path, exit_code=2,
                          hint="give a .pth file written by torch.save (`expose train`, MMHuman3D)")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ExposeError(f"truncated or damaged checkpoint ({exc})", path=path, exit_code=2,
                          hint=damage_hint(path)) from None
    if bad is not None:
        raise ExposeError(f"damaged checkpoint: its part {bad} fails its checksum", path=path, exit_code=2,
                          hint=damage_hint(path))


def _safe_torch_load(path: Path) -> dict:
    """``torch.load(weights_only=True)``, admitting numpy arrays (MMHuman3D's meta may hold some)."""
    safe = [np.ndarray, np.dtype]
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    safe += [_reconstruct, scalar]
    safe += [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "uint8", "bool")]
    sniff_checkpoint(path)
    try:
        with torch.serialization.safe_globals(safe):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0]
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = "it holds objects other than tensors and numbers (code a safe load does not run)"
        raise ExposeError(f"cannot load as a safe (weights-only) checkpoint: {reason}", path=path,
                          hint=damage_hint(path)) from exc
    if not isinstance(obj, dict):
        raise ExposeError(f"expected a dict, found {type(obj).__name__}", path=path)
    return obj


def detect_kind(state: dict) -> str:
    """Which of the four models a state_dict belongs to."""
    if any(k.startswith("hand_backbone.") for k in state) and any(k.startswith("face_backbone.") for k in state):
        return "expose"
    if "backbone.transition1.0.0.weight" in state or any(k.startswith("backbone.conv_layers.") for k in state):
        return "body"
    if "head.right_hand_pose_idxs" in state:
        return "hand"
    if "head.jaw_pose_idxs" in state and "head.expression_idxs" in state:
        return "face"
    raise ExposeError("cannot tell which ExPose model this state_dict belongs to (no known head keys)")


def infer_config(state: dict, kind: str) -> ModelConfig:
    """The config of a state_dict: the preset, with widths read from the tensor shapes."""
    cfg = preset(kind)

    def hidden(prefix: str) -> tuple[int, ...]:
        widths = []
        i = 0
        while f"{prefix}.regressor.module.blocks.{i}.0.weight" in state:
            widths.append(int(state[f"{prefix}.regressor.module.blocks.{i}.0.weight"].shape[0]))
            i += 1
        return tuple(widths)

    for part, (bb, hd) in part_modules(kind).items():
        spec = KINDS[part]
        section = getattr(cfg, spec.config_section)
        if spec.imagenet_backbone == "hrnet":
            section.hrnet_width = int(state[f"{bb}.transition1.0.0.weight"].shape[0])
            section.feature_dim = int(state[f"{bb}.conv_layers.0.conv3.weight"].shape[0])
        else:
            section.resnet_width = int(state[f"{bb}.conv1.weight"].shape[0])
        section.hidden = hidden(hd)
        if spec.body_model == "flame":  # FLAME's shape and expression sizes vary: its head's buffers say
            section.num_betas = int(state[f"{hd}.shape_idxs"].numel())
            section.num_expression = int(state[f"{hd}.expression_idxs"].numel())
    return cfg


def load_state(net: ExPoseNet, state: dict, source_format: str = "state_dict") -> LoadReport:
    """Copy ``state`` into ``net``: skip the known unused groups, fill frozen-BN counters, and
    refuse any missing, unexpected or mis-shaped key."""
    report = LoadReport(net.kind, source_format)
    own = net.state_dict()
    clean = {}
    for key, value in state.items():
        key = key[7:] if key.startswith("module.") else key
        for pattern in _SKIP:
            m = pattern.search(key)
            if m:
                report.skipped[m.group(0).strip(".")] += 1
                break
        else:
            clean[key] = value
    for key in own:
        if key not in clean and key.endswith("num_batches_tracked"):
            clean[key] = torch.zeros((), dtype=torch.long)
            report.filled.append(key)
    missing = [k for k in own if k not in clean]
    unexpected = [k for k in clean if k not in own]
    mismatched = [f"{k}: {tuple(clean[k].shape)} vs {tuple(own[k].shape)}" for k in own
                  if k in clean and tuple(clean[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        lines = []
        if missing:
            lines.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            lines.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if mismatched:
            lines.append(f"{len(mismatched)} with other shapes (e.g. {'; '.join(mismatched[:2])})")
        raise ExposeError(f"checkpoint does not fit the {net.kind} model: " + "; ".join(lines),
                          hint="is this one of MMHuman3D's four ExPose checkpoints (or one written by expose)?")
    net.load_state_dict(clean, strict=True)
    return report


def resolve_checkpoint(path_or_name: str | Path, tree: DataTree | None = None) -> Path:
    """A file path, or a name (``expose``, ``body``, ``hand``, ``face``, a file stem) in the data tree."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    tree = tree or DataTree()
    named = tree.checkpoint(str(path_or_name))
    if named.is_file():
        return named
    published = str(path_or_name) in CHECKPOINT_FILES or named.name in CHECKPOINT_FILES.values()
    raise MissingFileError(named if not path.suffix else path, "checkpoint",
                           "run `expose fetch-models` (or give the path of a .pth file)" if published else
                           "check the path (`expose train` writes OUT/last.pth, best.pth and epoch_K.pth)")


def load_net(path_or_name: str | Path, tree: DataTree | None = None, config_file: str | Path | None = None,
             overrides: list[str] | tuple = ()) -> tuple[ExPoseNet, LoadReport]:
    """Build the right :class:`ExPoseNet` for a checkpoint file and load its weights (eval mode).

    ``config_file`` (TOML) and ``overrides`` (``section.field=value``) update the checkpoint's config
    before the network is built: attention settings change freely; widths must still fit the weights.
    """
    path = resolve_checkpoint(path_or_name, tree)
    obj = _safe_torch_load(path)
    if obj.get("format") == FORMAT:
        version = obj.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ExposeError(f"checkpoint format version {version!r} is newer than this expose reads ({FORMAT_VERSION})",
                              hint="upgrade expose (pip install -U expose-cli)", path=path)
        cfg = apply_overrides(ModelConfig.from_dict(obj["config"]), config_file, overrides)
        net = ExPoseNet(cfg)
        try:
            report = load_state(net, obj["state_dict"], FORMAT)
        except ExposeError as exc:
            raise ExposeError(exc.reason, hint=exc.hint, path=path) from exc
        return net.eval(), report
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        state, fmt = obj["state_dict"], "mmhuman3d"
    else:
        state, fmt = obj, "state_dict"
    # DataParallel / DistributedDataParallel checkpoints prefix every key with "module.".
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    try:
        kind = detect_kind(state)
        cfg = apply_overrides(infer_config(state, kind), config_file, overrides)
    except KeyError as exc:
        raise ExposeError(f"incomplete checkpoint: no {exc.args[0]}", path=path) from exc
    except ExposeError as exc:
        raise ExposeError(exc.reason, hint=exc.hint, path=exc.path or path) from exc
    net = ExPoseNet(cfg)
    try:
        report = load_state(net, state, fmt)
    except ExposeError as exc:
        raise ExposeError(exc.reason, hint=exc.hint, path=path) from exc
    return net.eval(), report


def save_checkpoint(net: ExPoseNet, path: str | Path, step: int = 0, epoch: int = 0, extra: dict | None = None) -> None:
    """Our format: config, model kind, step/epoch, format version, weights; written atomically."""
    obj = {"format": FORMAT, "version": FORMAT_VERSION, "kind": net.kind, "config": net.cfg.to_dict(),
           "step": int(step), "epoch": int(epoch), "state_dict": net.state_dict()}
    if extra:
        obj["extra"] = extra
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_model(path_or_name: str | Path, tree: DataTree | None = None, device: str | torch.device = "cpu",
               config_file: str | Path | None = None, overrides: list[str] | tuple = (),
               report: Callable[[str], None] | None = None) -> Predictor:
    """A ready :class:`Predictor`: the checkpoint's networks plus the body model and regressors
    from the data tree (SMPL-X + SMPLX_to_J14 for body/expose, MANO for hand, FLAME for face).

    ``report`` receives one line saying what was loaded and what was skipped (the CLI prints it).
    """
    tree = tree or DataTree()
    net, load_report = load_net(path_or_name, tree, config_file, overrides)
    if report is not None:  # the groups skipped are the expected ones (anything else is refused)
        report(f"loaded {net.kind} model from {resolve_checkpoint(path_or_name, tree)} ({load_report.source_format})")
    return build_predictor(net, tree).to(device)


def new_net(cfg: ModelConfig, tree: DataTree | None = None) -> ExPoseNet:
    """A freshly initialised network whose heads start from the seed's mean files, as MMHuman3D's
    heads do: ``all_means.pkl`` (6D pose means) and ``shape_mean.npy`` (body betas) from ``tree``."""
    from expose_cli.body_models.auxiliary import Auxiliary
    from expose_cli.models.heads import BODY_PARTS, HAND_PARTS

    aux = Auxiliary(tree or DataTree())
    parts = {p.name: p for p in (*BODY_PARTS, *HAND_PARTS) if p.use_mean}
    means = {name: torch.as_tensor(aux.mean_rot6d(name, p.num_joints), dtype=torch.float32) for name, p in parts.items()}
    shape_mean = torch.as_tensor(aux.shape_mean(), dtype=torch.float32) if "body" in KINDS[cfg.kind].parts else None
    return ExPoseNet(cfg, means, shape_mean)


def build_model(net: ExPoseNet, tree: DataTree) -> ExPoseModel:
    """``net`` with the body model its kind needs, from ``tree``, as one module (training and inference)."""
    from expose_cli.body_models import build_flame, build_mano, build_smplx
    from expose_cli.body_models.auxiliary import Auxiliary

    spec = KINDS[net.kind]
    if spec.body_model == "smplx":
        body = build_smplx(tree, num_betas=net.cfg.body.num_betas, num_expression=net.cfg.body.num_expression)
        return ExPoseModel(net, body, Auxiliary(tree).smplx_to_j14())
    if spec.body_model == "mano":
        return ExPoseModel(net, build_mano(tree, spec.model_variant, num_betas=net.cfg.hand.num_betas))
    return ExPoseModel(net, build_flame(tree, net.cfg.face.num_betas, net.cfg.face.num_expression))


def build_predictor(net: ExPoseNet, tree: DataTree) -> Predictor:
    """Attach the body model that ``net``'s kind needs, from ``tree``, for inference."""
    return Predictor(build_model(net, tree))
