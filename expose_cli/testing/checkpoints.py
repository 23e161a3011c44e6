"""Randomly initialised checkpoints in MMHuman3D's published layout, for tests and the demo.

The file holds ``{'meta': {...}, 'state_dict': {...}}`` with every key MMHuman3D stores: the networks,
the regressor's ``layer_00N`` aliases, HRNet's unused ``stage4`` / ``final_layer`` /
``downsample_stage_*`` and the body-model buffers (random stand-ins of the right shapes). BatchNorm
statistics are set so activations stay of order one.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

from expose_cli.kinds import KINDS
from expose_cli.models.config import ModelConfig, preset, small_config
from expose_cli.models.expose import ExPoseNet
from expose_cli.utils.atomic import atomic_path

#: MMHuman3D's config name of each kind (its published checkpoint's file name).
CONFIG_NAMES = {k.name: Path(k.checkpoint_file).stem for k in KINDS.values()}


def reference_layout(config_name: str) -> dict[str, list[int]]:
    """MMHuman3D's ``{key: shape}`` of a config (shipped with the package)."""
    name = CONFIG_NAMES.get(config_name, config_name)
    text = resources.files("expose_cli.testing").joinpath(f"reference/mmhuman3d_{name}_state_dict.json").read_text()
    return json.loads(text)


def random_net(kind: str, seed: int = 0, small: bool = False) -> ExPoseNet:
    """An :class:`ExPoseNet` with random weights and sane BatchNorm statistics, every random number
    drawn from a generator seeded with ``seed`` (the global torch RNG is neither read nor seeded)."""
    cfg: ModelConfig = small_config(kind) if small else preset(kind)
    gen = torch.Generator().manual_seed(seed)
    net = ExPoseNet(cfg)
    with torch.no_grad():
        for module in net.modules():
            _init_module(module, gen)
    return net.eval()


def _init_module(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Overwrite ``module``'s own parameters (and BatchNorm statistics) from ``gen``."""
    if isinstance(module, torch.nn.BatchNorm2d):
        module.weight.uniform_(0.5, 1.0, generator=gen)
        module.bias.uniform_(-0.1, 0.1, generator=gen)
        module.running_mean.normal_(0.0, 0.1, generator=gen)
        module.running_var.uniform_(0.5, 2.0, generator=gen)
        return
    for name, param in module.named_parameters(recurse=False):
        fan_in = param[0].numel() if param.dim() > 1 else None
        if isinstance(module, torch.nn.Linear) and name == "weight":
            param.normal_(0.0, 0.1 * (1.0 / fan_in) ** 0.5, generator=gen)
        elif fan_in is not None:  # conv and other weights
            param.normal_(0.0, (1.0 / fan_in) ** 0.5, generator=gen)
        elif name == "bias" and isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            bound = 1.0 / module.weight[0].numel() ** 0.5  # torch's default range
            param.uniform_(-bound, bound, generator=gen)
        # other 1-D parameters keep their constructor's constant values


def mmhuman3d_state_dict(net: ExPoseNet, config_name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """``net``'s weights laid out as MMHuman3D stores them (full-size layout only for the keys our
    model lacks: unused HRNet stages and body-model buffers get random tensors of the reference shapes;
    for a small net, body-model buffers of at most 3 per axis: the loader skips them whatever their shape)."""
    gen = torch.Generator().manual_seed(seed + 1)
    ours = net.state_dict()
    layout = reference_layout(config_name)
    small = net.cfg.body.hrnet_width != 48 or net.cfg.hand.resnet_width != 64
    out: dict[str, torch.Tensor] = {}
    for key, shape in layout.items():
        src = _layer_alias(key) if ".regressor.module.layer_" in key else key
        if src in ours:
            out[key] = ours[src].clone()
        elif key.endswith("num_batches_tracked"):
            out[key] = torch.zeros((), dtype=torch.long)
        elif small and key.startswith("backbone."):
            continue  # unused HRNet parts of a small net: their full-size shapes would not fit
        else:
            if small and key.startswith("body_model_"):
                shape = [min(n, 3) for n in shape]  # skipped on load: a small net carries them small
            if "idxs" in key or key.endswith(("faces_tensor", "parents", "lmk_faces_idx", "extra_joints_idxs", "neck_kin_chain")):
                out[key] = torch.randint(0, 10, shape, generator=gen)
            else:
                out[key] = torch.randn(shape, generator=gen) * 0.01
    if small:  # unused parts in the small width, so the same skip rules are exercised
        width = net.cfg.body.hrnet_width if "body" in KINDS[config_name].parts else None
        if width is not None:
            out["backbone.stage4.0.branches.0.0.conv1.weight"] = torch.randn(width, width, 3, 3, generator=gen)
            out["backbone.final_layer.weight"] = torch.randn(24, width, 1, 1, generator=gen)
            out["backbone.downsample_stage_1.0.weight"] = torch.randn(width, width, 3, 3, generator=gen)
    if net.frozen_body:  # the full model's frozen BatchNorm: no counters in backbone/head
        out = {k: v for k, v in out.items() if not (k.startswith(("backbone.", "head.")) and k.endswith("num_batches_tracked"))}
    return out


def _layer_alias(key: str) -> str:
    """``....regressor.module.layer_001.0.weight`` -> ``....regressor.module.blocks.1.0.weight``."""
    head, _, tail = key.partition(".regressor.module.layer_")
    index, _, rest = tail.partition(".")
    return f"{head}.regressor.module.blocks.{int(index)}.{rest}"


def write_mmhuman3d_checkpoint(path: str | Path, config_name: str, seed: int = 0, small: bool = False) -> ExPoseNet:
    """Write a random checkpoint in MMHuman3D's format; returns the network it holds."""
    kind = config_name if config_name in CONFIG_NAMES else {v: k for k, v in CONFIG_NAMES.items()}[config_name]
    net = random_net(kind, seed, small)
    meta = {"mmcv_version": "1.5.0", "epoch": 100, "iter": 1000, "config": f"# {CONFIG_NAMES[kind]}.py (stand-in)"}
    with atomic_path(path) as tmp:
        torch.save({"meta": meta, "state_dict": mmhuman3d_state_dict(net, kind, seed)}, tmp)
    return net
