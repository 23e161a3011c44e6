"""ImageNet backbones for `expose train`: the public weights, converted to our key names.

`expose fetch pretrained` downloads (assets/download.py, checksum-verified) ResNet-18 as torchvision
publishes it (``resnet18-f37072fd.pth``, a plain state dict) and HRNet-W48 as timm publishes
``hrnet_w48.ms_in1k`` on the Hugging Face hub (``model.safetensors``), into
``pretrained_models/imagenet/``. :func:`install_imagenet` then writes what MMHuman3D's configs load,
``pretrained_models/resnet18.pth`` and ``pretrained_models/hrnet_pretrain.pth``: plain state dicts
in our (= MMHuman3D's) backbone key names, written atomically.

Key layouts, checked against both sources: torchvision's ResNet-18 uses our names exactly
(``conv1``, ``bn1``, ``layer1.0.conv1`` ... ``layer4.1.bn2``, ``layerN.0.downsample.0/1``) plus the
classifier ``fc.*``, which is dropped. timm's HRNet follows HRNet-Image-Classification, whose names
ours keep: stem ``conv1/bn1/conv2/bn2``, ``layer1`` (Bottlenecks), ``transition1..3`` (an
``nn.Identity`` where ours holds ``None``: neither has weights), ``stage2``/``stage3`` modules with
``branches`` and ``fuse_layers``; its ``stage4``, ``incre_modules``, ``downsamp_modules``,
``final_layer`` and ``classifier`` are dropped, and ExPose's own layers (``subsample_2/3``,
``conv_layers``) stay as built. Every other tensor of the backbone must come from the file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from expose_cli.assets.download import LockFile, lock_sha
from expose_cli.assets.manifest import Asset
from expose_cli.errors import ExposeError
from expose_cli.io.hashing import sha256_file
from expose_cli.io.paths import DataTree
from expose_cli.io.safetensors import read_safetensors
from expose_cli.models.backbones.hrnet import HRNetExpose
from expose_cli.models.backbones.resnet import ResNet18
from expose_cli.training.pretrained import IMAGENET_FILES, convert_backbone, load_state_file
from expose_cli.utils.atomic import atomic_path

#: Manifest asset -> the backbone its file initialises (a key of ``IMAGENET_FILES``).
BACKBONE_OF = {"hrnet_w48_imagenet": "hrnet", "resnet18_imagenet": "resnet18"}
#: ExPose's HRNet layers that no ImageNet HRNet has: they keep their initialisation.
EXPOSE_ONLY = ("subsample_2.", "subsample_3.", "conv_layers.")


def imagenet_backbone(kind: str) -> nn.Module:
    """The preset's backbone (HRNet-W48 or ResNet-18 width 64) on the meta device: names and
    shapes only, no memory."""
    with torch.device("meta"):
        return HRNetExpose() if kind == "hrnet" else ResNet18()


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A published state dict: ``.safetensors`` by our reader, anything else by ``torch.load``
    with ``weights_only``."""
    return read_safetensors(path) if path.suffix == ".safetensors" else load_state_file(path)


def convert_state(state: dict[str, torch.Tensor], kind: str, backbone: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """A published state dict for backbone ``kind`` (``hrnet``/``resnet18``) in our key names.
    ``backbone`` (default: the preset's) gives the names and shapes. Raises when a tensor does not
    fit or one that the ImageNet network has is missing."""
    backbone = backbone if backbone is not None else imagenet_backbone(kind)
    converted = convert_backbone(state, backbone)
    wanted = [k for k in backbone.state_dict() if not k.startswith(EXPOSE_ONLY) and not k.endswith("num_batches_tracked")]
    missing = [k for k in wanted if k not in converted]
    if missing:
        raise ExposeError(f"{len(missing)} of the backbone's {len(wanted)} ImageNet tensors are not in the file "
                          f"(e.g. {missing[0]})",
                          hint="the file is not a torchvision ResNet-18 / timm HRNet-W48; `expose fetch pretrained --overwrite`")
    return converted


def convert_imagenet_file(raw: Path, kind: str, out: Path, backbone: nn.Module | None = None) -> int:
    """Convert the published file ``raw`` (:func:`convert_state`) and write it to ``out``
    atomically; returns the number of tensors written. A failure names ``raw`` and writes nothing."""
    try:
        converted = convert_state(read_weights(raw), kind, backbone)
    except ExposeError as exc:
        raise ExposeError(exc.reason, hint=exc.hint, path=raw) from exc
    with atomic_path(out) as tmp:
        torch.save(converted, tmp)
    return len(converted)


def install_imagenet(tree: DataTree, lock: LockFile, asset: Asset, force: bool = False) -> str:
    """Write the converted file of a downloaded, verified ``imagenet`` asset; returns one line.

    The output is recorded in the lock file with the sha256 of the download it came from, so a
    later run skips it while both are unchanged. A file already there that expose did not write
    (a user's own ``hrnet_pretrain.pth``) is kept unless ``force``.
    """
    kind = BACKBONE_OF[asset.name]
    raw, out = asset.paths(tree)[0], tree.pretrained_models / IMAGENET_FILES[kind]
    source = f"converted from {lock.key(raw)} (sha256 {lock_sha(lock, raw)})"
    entry = lock.get(out)
    if out.is_file() and not force:
        st = out.stat()
        ours = entry is not None and entry["size"] == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
        if ours and entry["url"] == source:
            return f"{out.name}: up to date"
        if not ours:
            return f"{out.name}: kept the file already there (not written by expose); --overwrite replaces it"
    count = convert_imagenet_file(raw, kind, out)
    lock.record(out, sha256_file(out), source)
    return f"{out.name}: {count} tensors converted from {raw.name}"
