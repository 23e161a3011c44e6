"""The iterative regressor of HMR/ExPose: ``p <- p + MLP([features, p])``, three times."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Hidden blocks ``Linear [-> activation] [-> Dropout]``, then a linear output layer.

    The output layer starts small (Xavier-uniform, gain 0.01) so the first estimate is the mean.
    Parameter names follow MMHuman3D (``blocks.N.0``, ``output_layer``).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (1024, 1024),
                 activation: str = "none", dropout: float = 0.5, gain: float = 0.01) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        dim = in_dim
        for width in hidden:
            layers: list[nn.Module] = [nn.Linear(dim, width)]
            if activation == "relu":
                layers.append(nn.ReLU(inplace=True))
            elif activation != "none":
                raise ValueError(f"activation must be 'relu' or 'none', not {activation!r}")
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            self.blocks.append(nn.Sequential(*layers))
            dim = width
        self.output_layer = nn.Linear(dim, out_dim)
        nn.init.xavier_uniform_(self.output_layer.weight, gain=gain)
        nn.init.zeros_(self.output_layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.output_layer(x)


class IterativeRegressor(nn.Module):
    """Refines a parameter vector in ``num_stages`` steps starting from ``mean_param`` or ``cond``.

    Returns the estimate after every stage (the last one is the prediction).
    """

    def __init__(self, mlp: MLP, mean_param: torch.Tensor, num_stages: int = 3) -> None:
        super().__init__()
        self.module = mlp
        self.num_stages = num_stages
        self.register_buffer("mean_param", mean_param.reshape(1, -1).clone())

    def forward(self, features: torch.Tensor, cond: torch.Tensor | None = None) -> list[torch.Tensor]:
        params = self.mean_param.expand(features.shape[0], -1) if cond is None else cond
        stages = []
        for _ in range(self.num_stages):
            params = params + self.module(torch.cat([features, params], dim=1))
            stages.append(params)
        return stages
