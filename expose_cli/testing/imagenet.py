"""Stand-ins for the published ImageNet files: the key layouts of torchvision's ResNet-18 and of
timm's HRNet, transcribed from their constructors (not from our backbones), at any width.

At full size the layouts carry the published parameter counts (ResNet-18 11,689,512; HRNet-W48
77,469,864), which tests check. :func:`random_state` fills a layout with seeded random values:
``torch.save`` it for a torchvision-like ``.pth``, ``write_safetensors`` it for a timm-like file.
"""

from __future__ import annotations

import torch

Layout = dict[str, tuple[int, ...]]

#: timm's HRNet classification head widths (``_make_head``), before the Bottleneck expansion of 4.
TIMM_HEAD_CHANNELS = (32, 64, 128, 256)


def _conv(layout: Layout, name: str, cout: int, cin: int, k: int, bias: bool = False) -> None:
    layout[f"{name}.weight"] = (cout, cin, k, k)
    if bias:
        layout[f"{name}.bias"] = (cout,)


def _bn(layout: Layout, name: str, c: int, tracked: bool) -> None:
    for part in ("weight", "bias", "running_mean", "running_var"):
        layout[f"{name}.{part}"] = (c,)
    if tracked:
        layout[f"{name}.num_batches_tracked"] = ()


def _basic(layout: Layout, p: str, cin: int, c: int, down: bool, tracked: bool) -> None:
    _conv(layout, f"{p}.conv1", c, cin, 3)
    _bn(layout, f"{p}.bn1", c, tracked)
    _conv(layout, f"{p}.conv2", c, c, 3)
    _bn(layout, f"{p}.bn2", c, tracked)
    if down:
        _conv(layout, f"{p}.downsample.0", c, cin, 1)
        _bn(layout, f"{p}.downsample.1", c, tracked)


def _bottleneck(layout: Layout, p: str, cin: int, planes: int, down: bool, tracked: bool) -> None:
    _conv(layout, f"{p}.conv1", planes, cin, 1)
    _bn(layout, f"{p}.bn1", planes, tracked)
    _conv(layout, f"{p}.conv2", planes, planes, 3)
    _bn(layout, f"{p}.bn2", planes, tracked)
    _conv(layout, f"{p}.conv3", 4 * planes, planes, 1)
    _bn(layout, f"{p}.bn3", 4 * planes, tracked)
    if down:
        _conv(layout, f"{p}.downsample.0", 4 * planes, cin, 1)
        _bn(layout, f"{p}.downsample.1", 4 * planes, tracked)


def torchvision_resnet18_layout(width: int = 64, num_classes: int = 1000, tracked: bool = False) -> Layout:
    """torchvision's ``resnet18`` state dict: ``conv1``/``bn1``, ``layer1..4`` of two BasicBlocks
    (a 1x1 ``downsample`` in the first block of layers 2-4), ``fc``. The published file was saved
    without ``num_batches_tracked`` (``tracked=False``)."""
    layout: Layout = {}
    _conv(layout, "conv1", width, 3, 7)
    _bn(layout, "bn1", width, tracked)
    cin = width
    for i, c in enumerate((width, 2 * width, 4 * width, 8 * width)):
        _basic(layout, f"layer{i + 1}.0", cin, c, down=i > 0, tracked=tracked)
        _basic(layout, f"layer{i + 1}.1", c, c, down=False, tracked=tracked)
        cin = c
    layout["fc.weight"] = (num_classes, cin)
    layout["fc.bias"] = (num_classes,)
    return layout


def _transition(layout: Layout, name: str, pre: list[int], cur: list[int], tracked: bool) -> None:
    for i, c in enumerate(cur):
        if i < len(pre):
            if pre[i] != c:  # else nn.Identity: no weights
                _conv(layout, f"{name}.{i}.0", c, pre[i], 3)
                _bn(layout, f"{name}.{i}.1", c, tracked)
            continue
        for j in range(i + 1 - len(pre)):
            cout = c if j == i - len(pre) else pre[-1]
            _conv(layout, f"{name}.{i}.{j}.0", cout, pre[-1], 3)
            _bn(layout, f"{name}.{i}.{j}.1", cout, tracked)


def _hr_module(layout: Layout, p: str, chans: list[int], blocks: int, tracked: bool) -> None:
    for b, c in enumerate(chans):
        for k in range(blocks):
            _basic(layout, f"{p}.branches.{b}.{k}", c, c, down=False, tracked=tracked)
    for i, ci in enumerate(chans):
        for j, cj in enumerate(chans):
            if j > i:  # 1x1 conv + BN, then upsampling
                _conv(layout, f"{p}.fuse_layers.{i}.{j}.0", ci, cj, 1)
                _bn(layout, f"{p}.fuse_layers.{i}.{j}.1", ci, tracked)
            for k in range(i - j):  # j < i: stride-2 3x3 convs
                cout = ci if k == i - j - 1 else cj
                _conv(layout, f"{p}.fuse_layers.{i}.{j}.{k}.0", cout, cj, 3)
                _bn(layout, f"{p}.fuse_layers.{i}.{j}.{k}.1", cout, tracked)


def timm_hrnet_layout(width: int = 48, blocks: int = 4, stage3_modules: int = 4, stage4_modules: int = 3,
                      num_classes: int = 1000, tracked: bool = True) -> Layout:
    """timm's ``HighResolutionNet`` (``hrnet_w{width}``) state dict with its classification head:
    stem, ``layer1`` (4 Bottlenecks), ``transition1..3``, ``stage2..4``, ``incre_modules``,
    ``downsamp_modules``, ``final_layer``, ``classifier``."""
    layout: Layout = {}
    _conv(layout, "conv1", 64, 3, 3)
    _bn(layout, "bn1", 64, tracked)
    _conv(layout, "conv2", 64, 64, 3)
    _bn(layout, "bn2", 64, tracked)
    for i in range(4):
        _bottleneck(layout, f"layer1.{i}", 64 if i == 0 else 256, 64, down=i == 0, tracked=tracked)
    c = [width, 2 * width, 4 * width, 8 * width]
    pre = [256]
    for stage, modules in ((2, 1), (3, stage3_modules), (4, stage4_modules)):
        _transition(layout, f"transition{stage - 1}", pre, c[:stage], tracked)
        for m in range(modules):
            _hr_module(layout, f"stage{stage}.{m}", c[:stage], blocks, tracked)
        pre = c[:stage]
    head = TIMM_HEAD_CHANNELS
    for i, ch in enumerate(c):
        _bottleneck(layout, f"incre_modules.{i}.0", ch, head[i], down=ch != 4 * head[i], tracked=tracked)
    for i in range(3):
        _conv(layout, f"downsamp_modules.{i}.0", 4 * head[i + 1], 4 * head[i], 3, bias=True)
        _bn(layout, f"downsamp_modules.{i}.1", 4 * head[i + 1], tracked)
    _conv(layout, "final_layer.0", 2048, 4 * head[3], 1, bias=True)
    _bn(layout, "final_layer.1", 2048, tracked)
    layout["classifier.weight"] = (num_classes, 2048)
    layout["classifier.bias"] = (num_classes,)
    return layout


def parameter_count(layout: Layout) -> int:
    """Learnable parameters (BN running statistics and counters excluded)."""
    skip = ("running_mean", "running_var", "num_batches_tracked")
    count = 0
    for key, shape in layout.items():
        if not key.endswith(skip):
            n = 1
            for d in shape:
                n *= d
            count += n
    return count


def random_state(layout: Layout, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random tensors of ``layout`` (float32; the counters int64, as PyTorch saves them)."""
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randint(0, 1000, shape, generator=g) if k.endswith("num_batches_tracked")
                else torch.randn(shape, generator=g)) for k, shape in layout.items()}
