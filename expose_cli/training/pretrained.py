"""Where a training run starts: ImageNet backbones, the part checkpoints, or a checkpoint.

MMHuman3D initialises the body's HRNet from ``hrnet_pretrain.pth`` and ResNet-18 from
``resnet18.pth`` (non-strict, no prefix) and never says where the first comes from (its issue
#279). `expose fetch pretrained` downloads public ImageNet weights (ResNet-18 as PyTorch publishes
it, HRNet-W48 as timm publishes ``hrnet_w48.ms_in1k``) and converts them with :func:`convert_backbone`
into our key names (assets/imagenet.py). The full model starts from the three part checkpoints, loaded by prefix
(``backbone.``/``head.`` of each into ``backbone``/``hand_backbone``/``face_backbone``...), which
MMHuman3D's config meant to do but could not (§5.1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from expose_cli.errors import ExposeError, MissingFileError, option
from expose_cli.io.paths import DataTree
from expose_cli.kinds import KINDS

#: The converted ImageNet files in ``pretrained_models/`` (MMHuman3D's names) per backbone.
IMAGENET_FILES = {"hrnet": "hrnet_pretrain.pth", "resnet18": "resnet18.pth"}
#: The part checkpoints the full model starts from, and the prefixes they fill.
PART_SOURCES = tuple((k.name, k.checkpoint_file, k.full_model_modules) for k in KINDS.values()
                     if k.full_model_modules is not None)
#: Keys of the published ImageNet files that our backbones do not have: classifiers and, for
#: timm's HRNet, its classification head and the stage ExPose does not run.
DROPPED_PREFIXES = ("fc.", "classifier.", "incre_modules.", "downsamp_modules.", "final_layer.", "stage4.")


def convert_backbone(state: dict[str, torch.Tensor], backbone: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A published ImageNet ``state`` (torchvision ResNet-18 or timm HRNet-W48 key layout) in our
    backbone's key names: the shared keys (same names in both layouts), with shapes checked; the
    classifier parts are dropped. Raises when nothing or a mis-shaped tensor matches."""
    own = backbone.state_dict()
    out, bad = {}, []
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key.startswith(DROPPED_PREFIXES) or key not in own:
            continue
        if tuple(value.shape) != tuple(own[key].shape):
            bad.append(f"{key}: {tuple(value.shape)} vs {tuple(own[key].shape)}")
            continue
        out[key] = value.detach().clone()
    if bad:
        raise ExposeError(f"{len(bad)} ImageNet weights do not fit the backbone (e.g. {bad[0]})",
                          hint="is the backbone width the preset's (HRNet-W48, ResNet-18 width 64)?")
    if len(out) < len(own) // 4:
        raise ExposeError(f"only {len(out)} of the backbone's {len(own)} tensors found in the ImageNet file",
                          hint="the file is not a torchvision ResNet-18 / timm HRNet-W48 checkpoint")
    return out


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A plain state dict from a ``.pth``/``.bin`` (loaded with ``weights_only``), or the
    ``state_dict`` entry of a checkpoint."""
    from expose_cli.models.checkpoint import _safe_torch_load

    obj = _safe_torch_load(path)
    return obj.get("state_dict", obj) if isinstance(obj.get("state_dict"), dict) else obj


def init_backbone_from_imagenet(backbone: torch.nn.Module, path: Path) -> tuple[int, int]:
    """Load a converted ImageNet file into ``backbone`` (non-strict: ExPose's new HRNet layers stay
    as built). Returns (tensors loaded, tensors of the backbone)."""
    state = load_state_file(path)
    converted = convert_backbone(state, backbone)
    backbone.load_state_dict(converted, strict=False)
    return len(converted), len(backbone.state_dict())


def init_full_from_parts(net, paths: dict[str, Path]) -> dict[str, int]:
    """The full model's networks from the body, hand and face checkpoints (MMHuman3D's or ours):
    each file's ``backbone.*``/``head.*`` into the prefixes of :data:`PART_SOURCES`. Every tensor of
    the six modules must be filled; returns how many came from each file."""
    from expose_cli.models.checkpoint import _SKIP

    own = net.state_dict()
    counts = {}
    for part, _, (bb, hd) in PART_SOURCES:
        if not paths[part].is_file():
            raise MissingFileError(paths[part], f"{part} checkpoint",
                                   f"`expose fetch-models`, or train it: `expose train {part} ...`")
        state = load_state_file(paths[part])
        state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
        moved = {}
        for key, value in state.items():
            if any(p.search(key) for p in _SKIP):
                continue
            for src, dst in (("backbone.", f"{bb}."), ("head.", f"{hd}.")):
                if key.startswith(src) and f"{dst}{key[len(src):]}" in own:
                    moved[f"{dst}{key[len(src):]}"] = value
        wanted = [k for k in own if k.startswith((f"{bb}.", f"{hd}.")) and not k.endswith("num_batches_tracked")]
        missing = [k for k in wanted if k not in moved]
        mis = [k for k in moved if tuple(moved[k].shape) != tuple(own[k].shape)]
        if missing or mis:
            what = f"{len(missing)} missing (e.g. {missing[0]})" if missing else f"{len(mis)} mis-shaped (e.g. {mis[0]})"
            raise ExposeError(f"the {part} checkpoint does not fit the full model's {bb}/{hd}: {what}",
                              path=paths[part], hint="use the part checkpoints of the same widths")
        net.load_state_dict(moved, strict=False)
        counts[part] = len(moved)
    return counts


def initialise(net, kind: str, init: str, tree: DataTree, log: Callable[[str], None] = print) -> str:
    """Apply ``init`` (``auto``, ``none`` or a checkpoint path) to a fresh ``net``; returns a line
    saying what was loaded. ``auto`` needs its files: a missing one is one line naming it and the
    command that makes it."""
    if init == "none":
        return "initialised from scratch (--init none)"
    if init != "auto":
        from expose_cli.models.checkpoint import load_state

        path = Path(init)
        if not path.is_file():
            raise MissingFileError(path, f"{option('init')} checkpoint", "give an existing .pth file, 'auto' or 'none'")
        try:
            load_state(net, load_state_file(path), "init")
        except ExposeError as exc:
            raise ExposeError(f"{option('init')} checkpoint: {exc.reason}", path=path, exit_code=2,
                              hint=f"give a {kind} checkpoint of the same widths, 'auto' or 'none'") from None
        return f"initialised from {path}"
    if KINDS[kind].imagenet_backbone is None:  # the full model: from the part checkpoints
        paths = {part: tree.pretrained_models / name for part, name, _ in PART_SOURCES}
        counts = init_full_from_parts(net, paths)
        return "initialised from the part checkpoints (" + ", ".join(f"{k} {v} tensors" for k, v in counts.items()) + ")"
    name = IMAGENET_FILES[KINDS[kind].imagenet_backbone]
    n, total = init_backbone_from_imagenet(net.backbone, tree.pretrained_models / name)
    return f"backbone initialised from {name} ({n} of {total} tensors; the rest as built)"


def required_files(kind: str, init: str, tree: DataTree) -> list[tuple[Path, str, str]]:
    """(path, what, the command that makes it) for every file ``init`` needs."""
    if init == "none":
        return []
    if init != "auto":
        return [(Path(init), f"{option('init')} checkpoint", "give an existing .pth file, 'auto' or 'none'")]
    if KINDS[kind].imagenet_backbone is None:
        return [(tree.pretrained_models / name, f"{part} checkpoint",
                 f"`expose fetch-models`, or train it: `expose train {part} ...` (or {option('init')} none)")
                for part, name, _ in PART_SOURCES]
    name = IMAGENET_FILES[KINDS[kind].imagenet_backbone]
    return [(tree.pretrained_models / name, "ImageNet backbone weights", f"`expose fetch pretrained` (or {option('init')} none)")]

