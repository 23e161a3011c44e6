"""The inference front of the four ExPose models.

:class:`Predictor` is a thin wrapper over :class:`expose_cli.models.model.ExPoseModel` (the one
``nn.Module`` that training also uses): batches under ``inference_mode``, backbones replaced by a
fused copy (BatchNorm folded into the convolutions, channels-last; on the CPU also prepacked for
oneDNN with ReLUs and residual sums fused, :mod:`expose_cli.models.cpu_fusion`); reduced precision
and other runtimes wrap it (:mod:`expose_cli.inference.backends`).
The networks (:class:`ExPoseNet`) carry MMHuman3D's module names, so published checkpoints load
one-to-one.
"""

from __future__ import annotations

import torch
from torch import nn

from expose_cli.models.cpu_fusion import can_pack, fold_batchnorm, pack_convolutions
from expose_cli.models.inputs import ModelInput
from expose_cli.models.model import (
    MANO_TIP_VERTICES,
    SMPLX_PARENTS,
    ExPoseModel,
    Prediction,
    module_device,
)
from expose_cli.models.network import ExPoseNet

__all__ = ["MANO_TIP_VERTICES", "SMPLX_PARENTS", "ExPoseNet", "Prediction", "Predictor"]


class Predictor:
    """Networks + body models: ``predictor(batch) -> Prediction``.

    ``body_model``: smplx SMPL-X layer (body, expose), MANO layer (hand) or FLAME layer (face).
    ``j14_regressor``: ``[14, 10475]`` SMPLX_to_J14 for LSP joints (body, expose).
    """

    def __init__(self, net: ExPoseNet | ExPoseModel, body_model: nn.Module | None = None,
                 j14_regressor: torch.Tensor | None = None, fuse: bool = True) -> None:
        self.model = net if isinstance(net, ExPoseModel) else ExPoseModel(net.eval(), body_model, j14_regressor)
        self.model.net.eval()
        self.fuse = fuse
        self._fused: dict[str, tuple[list, list, nn.Module]] = {}  # name -> (weights, their versions, fused copy)
        self._packed: dict[str, tuple[list, list, nn.Module]] = {}  # the same for the CPU copies (cpu_fusion)

    # The wrapped module's parts, under the names callers used before the module existed.
    net = property(lambda self: self.model.net)
    body_model = property(lambda self: self.model.body_model)
    j14 = property(lambda self: self.model.j14)
    parents = property(lambda self: self.model.parents)
    kind = property(lambda self: self.model.kind)

    @property
    def device(self) -> torch.device:
        """Where the networks' weights are (derived from them, never stored: a model moved by
        ``predictor.model.to(...)`` or wrapped while already on a GPU gets its batches there)."""
        return self.model.device

    @property
    def img_res(self) -> int:
        """Side (px) of the square person crop the model takes (``img_res`` of its config)."""
        return self.net.img_res

    @property
    def keypoint_model(self):
        return self.model.keypoint_model

    @keypoint_model.setter
    def keypoint_model(self, value) -> None:
        self.model.keypoint_model = value

    def backbone(self, name: str) -> nn.Module:
        """The backbone ``name`` for inference: in eval mode, a copy with every BatchNorm folded into
        its convolution and channels-last memory (same outputs to float precision, ~1.2x faster on
        CPU). In train mode, the network's own module."""
        module = getattr(self.net, name)
        if self.net.training or not self.fuse:
            return module
        return self._current(self._fused, name, lambda: fold_batchnorm(module).to(self.device))

    def _current(self, cache: dict, name: str, make) -> nn.Module:
        """``cache[name]``'s copy of backbone ``name``, made by ``make()`` when missing or stale.

        An optimiser step, load_state_dict or an in-place edit bumps a weight's version counter, and
        ``model.to(...)`` moves the weights but not the copy: the copy is then made again. Comparing
        the counters of the tensors listed when the copy was made costs ~0.2 ms a call; listing them
        anew (module.parameters()) would cost ~3 ms."""
        cached = cache.get(name)
        moved = cached is not None and module_device(cached[2]) != self.device  # the model went elsewhere
        if cached is None or moved or any(t._version != v for t, v in zip(cached[0], cached[1], strict=True)):
            module = getattr(self.net, name)
            tensors = [*module.parameters(), *module.buffers()]
            cache[name] = (tensors, [t._version for t in tensors], make())
        return cache[name][2]

    def _features(self, name: str, img: torch.Tensor) -> torch.Tensor:
        """``img``'s features from backbone ``name``: the network's own module in train mode; else
        :meth:`backbone`, or on the CPU without gradients a copy with BatchNorms folded, convolutions
        prepacked for oneDNN and their ReLUs and residual sums fused (:mod:`expose_cli.models.cpu_fusion`:
        the same outputs, ~1.1-1.3x faster than :meth:`backbone`), laid out for ``img``'s size."""
        if self.net.training or not self.fuse:
            return getattr(self.net, name)(img)
        img = img.contiguous(memory_format=torch.channels_last)
        packable = (can_pack(img.device) and img.dtype == torch.float32 and not torch.is_grad_enabled()
                    and not torch.is_autocast_enabled(img.device.type))  # packed: no backward, fp32 only
        if not packable:
            return self.backbone(name)(img)
        return self._current(self._packed, name, lambda: pack_convolutions(getattr(self.net, name), img))(img)

    def to(self, device) -> Predictor:
        """The networks and body model moved to ``device`` (:attr:`device` follows them)."""
        self._fused, self._packed = {}, {}
        self.model.to(torch.device(device))
        return self

    def __call__(self, batch: ModelInput) -> Prediction:
        with torch.inference_mode():
            return self.predict(batch.to(self.device, non_blocking=True))  # pinned: asynchronous

    def _smplx(self, rotations: dict, betas: torch.Tensor, expression: torch.Tensor, keypoints_only: bool = False):
        return self.model.smplx(rotations, betas, expression, keypoints_only)

    def predict(self, batch: ModelInput) -> Prediction:
        """The wrapped model's forward with this predictor's (fused) backbones; no ``inference_mode``
        here, so a training-mode network can be run and differentiated."""
        return self.model(batch, features=self._features)
