"""Backbones rewritten for inference, giving the same numbers as the plain module.

Two rewrites of a backbone's traced graph (:mod:`torch.fx`):

- :func:`fold_batchnorm` (any device): every BatchNorm folded into the convolution before it
  (torch's own ``fuse``), channels-last memory.
- :func:`pack_convolutions` (CPU, oneDNN): the same folding, and every convolution's weights
  reordered once into the blocked layout oneDNN computes with for the given input size (eager
  PyTorch reorders them on every call), with what follows the convolution fused into it as oneDNN
  post-ops: a ReLU, or a residual sum (``conv(x) + other``, then a ReLU if one follows). A step is
  absorbed only where the convolution's (or BatchNorm's) output has no other use, so nothing else
  sees the intermediate value. IEEE addition is commutative, so ``other + conv(x)`` gives the same
  bits, and the post-ops run in float32 as the separate operators do. Computations whose results
  nothing reads are dropped (ExPose's HRNet computes a high-resolution fusion in its last stage-3
  module that the head never uses).

Packed convolutions have no backward pass and no autocast rule: they are for float32 inference
with gradients off; elsewhere the folded module runs.
"""

from __future__ import annotations

import copy
import operator

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

__all__ = ["PackedConv2d", "can_pack", "conv_input_sizes", "fold_batchnorm", "pack_convolutions"]

_ADD = (operator.add, torch.add)


def can_pack(device: torch.device) -> bool:
    """Whether prepacked oneDNN convolutions run here (a CPU with torch's oneDNN build)."""
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def fold_batchnorm(module: nn.Module) -> fx.GraphModule:
    """An eval-mode copy of ``module`` with each BatchNorm folded into its convolution, channels-last.
    Its weights are ordinary tensors even when made under ``inference_mode``, so it can also run
    with gradients on."""
    from torch.fx.experimental.optimization import fuse

    with torch.inference_mode(False), torch.no_grad():
        return fuse(copy.deepcopy(module).eval()).to(memory_format=torch.channels_last)


class PackedConv2d(nn.Module):
    """A 2D convolution (and the eval-mode BatchNorm after it, folded in) with weights prepacked for
    oneDNN and a fused ReLU and/or residual sum.

    ``forward(x)`` is ``act(conv(x))``; ``forward(x, other)`` is ``act(conv(x) + other)``, where
    ``act`` is ReLU if ``relu`` else the identity. With ``overwrite`` set, the result is written
    into ``other`` (when it is a channels-last tensor of ``x``'s dtype) and ``other`` returned.
    ``input_size``: the ``[B, C, H, W]`` the weight layout is chosen for (any other size gives the
    same result, a little slower).
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, relu: bool, input_size: list[int]) -> None:
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"cannot pack a convolution with padding {conv.padding!r} ({conv.padding_mode})")
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        weight, bias = conv.weight.detach(), None if conv.bias is None else conv.bias.detach()
        if bn is not None:  # the arithmetic of torch's own folding, so both give the same weights
            weight, bias = (t.detach() for t in fuse_conv_bn_weights(
                weight, bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias))
        self.weight = torch.ops.mkldnn._reorder_convolution_weight(
            weight.contiguous(), self.padding, self.stride, self.dilation, self.groups, input_size)
        self.bias = None if bias is None else bias.clone()
        self.relu = relu
        self.overwrite = False  # set by pack_convolutions where ``other`` is dead after the sum

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        args = (self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups)
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(x, *args, "relu" if self.relu else "none", [], "")
        unary = "relu" if self.relu else None
        if self.overwrite and other.dtype == x.dtype and other.is_contiguous(memory_format=torch.channels_last):
            return torch.ops.mkldnn._convolution_pointwise_.binary(other, x, *args, "add", 1.0, unary, [], "")
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, other.contiguous(memory_format=torch.channels_last), *args, "add", 1.0, unary, [], "")


def _module(graph_module: fx.GraphModule, node: fx.Node | None, cls: type) -> nn.Module | None:
    if node is None or node.op != "call_module":
        return None
    module = graph_module.get_submodule(node.target)
    return module if isinstance(module, cls) else None


def _sole_user(node: fx.Node) -> fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _absorbed(gm: fx.GraphModule, conv: fx.Node) -> tuple[list[fx.Node], nn.BatchNorm2d | None, fx.Node | None, bool]:
    """What the convolution ``conv`` can absorb: ``(its chain of nodes, conv first; the BatchNorm;
    the sum's other operand or None; whether a ReLU is absorbed)``."""
    chain = [conv]
    bn = _module(gm, _sole_user(conv), nn.BatchNorm2d)
    if bn is not None and not bn.training and bn.track_running_stats:
        chain.append(_sole_user(conv))
    else:
        bn = None
    user, other = _sole_user(chain[-1]), None
    if user is not None and user.op == "call_function" and user.target in _ADD and len(user.args) == 2 and not user.kwargs:
        a, b = user.args
        candidate = b if a is chain[-1] else a
        if isinstance(candidate, fx.Node) and candidate is not chain[-1]:
            chain.append(user)
            other, user = candidate, _sole_user(user)
    relu = _module(gm, user, nn.ReLU) is not None
    if relu:
        chain.append(user)
    return chain, bn, other, relu


def _fresh(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether ``node``'s output is a new tensor the graph made (not an input, a weight or a view)."""
    if node.op == "call_function":
        return node.target in _ADD or node.target is torch.cat
    module = _module(gm, node, nn.Module)
    return isinstance(module, (PackedConv2d, nn.Upsample)) or (isinstance(module, nn.ReLU) and not module.inplace)


def _mark_overwrites(gm: fx.GraphModule) -> None:
    """Let each packed sum write into its other operand where that is a tensor the graph made, not
    also the convolution's input, and read by nothing that runs after the sum."""
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    for node in gm.graph.nodes:
        conv = _module(gm, node, PackedConv2d)
        if conv is None or len(node.args) != 2:
            continue
        x, other = node.args
        conv.overwrite = (other is not x and _fresh(gm, other)
                          and all(order[user] <= order[node] for user in other.users))


def conv_input_sizes(module: nn.Module, example: torch.Tensor) -> dict[str, list[int]]:
    """``{name: [B, C, H, W]}``: the input size of every ``nn.Conv2d`` of ``module`` for a batch
    like ``example``, from a forward pass of its first image (batch size then set to ``example``'s)."""
    sizes: dict[str, list[int]] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, args, name=name: sizes.__setitem__(name, [len(example), *args[0].shape[1:]]))
             for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            module(example[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return sizes


def pack_convolutions(module: nn.Module, example: torch.Tensor) -> fx.GraphModule:
    """``module`` (eval mode, traceable by :mod:`torch.fx`; left unchanged) with every ``nn.Conv2d``
    replaced by a :class:`PackedConv2d` absorbing the BatchNorm, sum and ReLU that follow it, sums
    written into their other operand where nothing reads it later, and dead code removed.
    ``example``: a channels-last float32 batch of the size it will see."""
    sizes = conv_input_sizes(module, example)
    gm = fx.symbolic_trace(module)  # shares the modules, not copies of them
    graph = gm.graph
    graph.eliminate_dead_code()  # first, so that no convolution collected below is dead
    convs = [n for n in graph.nodes if _module(gm, n, nn.Conv2d) is not None]
    with torch.no_grad():
        for i, conv in enumerate(convs):
            chain, bn, other, relu = _absorbed(gm, conv)
            name = f"packed_conv_{i}"
            gm.add_module(name, PackedConv2d(gm.get_submodule(conv.target), bn, relu, sizes[conv.target]))
            with graph.inserting_after(chain[-1]):
                packed = graph.call_module(name, (conv.args[0],) if other is None else (conv.args[0], other))
            chain[-1].replace_all_uses_with(packed)
            for node in reversed(chain):
                graph.erase_node(node)
    graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    _mark_overwrites(gm)
    return gm
