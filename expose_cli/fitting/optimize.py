"""The staged L-BFGS loop (SMPLify-X), batched: every row (persons x frames) in one problem.

As MMHuman3D's registrant: for each epoch, for each stage, the stage's parameters get a fresh
``torch.optim.LBFGS`` and ``num_iter`` steps of ``max_iter`` inner iterations each; a stage stops
early when the loss changes by less than ``ftol`` relative to ``max(|prev|, |cur|, 1)``. The
device is that of the keypoint model's buffers and the targets.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from expose_cli.fitting.config import FitConfig, Stage
from expose_cli.fitting.objective import SIZES, Targets, evaluate, sizes_for


def initial_params(start: dict[str, torch.Tensor] | None, rows: int, cfg: FitConfig, persons: int,
                   dtype=torch.float32, device=None, sizes: dict[str, int] = SIZES) -> dict[str, torch.Tensor]:
    """Leaf tensors to optimise: copies of ``start`` (``[B, n]`` per parameter; missing ones 0),
    else the mean pose (zeros; ``transl`` must then come from ``start``). ``sizes``: the model's
    parameters (SMPL-X's, or SMPL's: :func:`~expose_cli.fitting.objective.sizes_for`).

    Shared shape (``one_betas_per_video``): MMHuman3D shares one ``[1, 10]`` for the whole batch,
    and only when no start is given; the default shares one per person (``[P, 10]``), starting
    from the mean of that person's starting betas.
    """
    start = start or {}
    params = {}
    for name, size in sizes.items():
        value = start.get(name)
        value = torch.zeros(rows, size, dtype=dtype, device=device) if value is None else value.detach()
        params[name] = value.to(dtype=dtype, device=device).reshape(rows, size).clone()
    if cfg.one_betas_per_video:
        if cfg.mmhuman3d and "betas" not in start:
            params["betas"] = params["betas"][:1].clone() * 0
        elif not cfg.mmhuman3d:
            params["betas"] = params["betas"].reshape(persons, -1, SIZES["betas"]).mean(dim=1)
    return params


def relative_change(previous: float, current: float) -> float:
    """``|prev - cur| / max(|prev|, |cur|, 1)``."""
    return abs(previous - current) / max(abs(previous), abs(current), 1.0)


def optimize_stage(model: nn.Module, cfg: FitConfig, stage: Stage, params: dict[str, torch.Tensor],
                   targets: Targets, start: dict[str, torch.Tensor] | None = None,
                   on_step: Callable[[], None] | None = None, prior: nn.Module | None = None) -> None:
    """``stage.num_iter`` L-BFGS steps on the stage's parameters (updated in place); ``prior``: the
    optional pose prior (:mod:`expose_cli.fitting.pose_prior`)."""
    fitted = [n for n in stage.fitted() if n in params]  # SMPL: no hands, jaw or expression
    for name, value in params.items():
        value.requires_grad_(name in fitted)
    leaves = [params[n] for n in fitted]
    if not leaves or stage.num_iter == 0:
        return
    optimizer = torch.optim.LBFGS(leaves, lr=cfg.lr, max_iter=cfg.max_iter,
                                  line_search_fn=None if cfg.line_search == "none" else cfg.line_search)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = evaluate(model, cfg, stage, params, targets, start, prior)["total"].sum()
        loss.backward()
        return loss

    previous = None
    for step in range(stage.num_iter):
        loss = float(optimizer.step(closure).detach())
        if on_step is not None:
            on_step()
        if step > 0 and previous is not None and cfg.ftol > 0 and relative_change(previous, loss) < cfg.ftol:
            break
        previous = loss
    for value in params.values():
        value.requires_grad_(False)


def fit(model: nn.Module, cfg: FitConfig, targets: Targets, start: dict[str, torch.Tensor] | None, persons: int,
        on_step: Callable[[], None] | None = None, pull: bool = True,
        prior: nn.Module | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Run every epoch and stage from ``start`` (else zeros); returns ``(params, terms)``: the fitted
    parameters per row and the final loss terms per row (last stage's weights). ``pull``: the start
    is an estimate to pull towards (``start_pull_weight``; never in compat), not just a placement."""
    rows = targets.keypoints.shape[0]
    sizes = sizes_for(model)
    params = initial_params(start, rows, cfg, persons, targets.keypoints.dtype, targets.keypoints.device, sizes)
    anchor = None if start is None or not pull or cfg.mmhuman3d else {n: params_like(start, n, rows, targets, sizes[n])
                                                                      for n in sizes}
    for _ in range(cfg.num_epochs):
        for stage in cfg.stages():
            optimize_stage(model, cfg, stage, params, targets, anchor, on_step, prior)
    with torch.no_grad():
        terms = evaluate(model, cfg, cfg.stages()[-1], params, targets, anchor, prior)
    return params, terms


def params_like(start: dict[str, torch.Tensor], name: str, rows: int, targets: Targets,
                size: int | None = None) -> torch.Tensor:
    """The start's ``name`` as ``[B, n]`` on the targets' device (zeros of ``size``, default SMPL-X's,
    when not given)."""
    value = start.get(name)
    if value is None:
        return torch.zeros(rows, size or SIZES[name], dtype=targets.keypoints.dtype, device=targets.keypoints.device)
    return value.detach().to(dtype=targets.keypoints.dtype, device=targets.keypoints.device).reshape(rows, -1)
