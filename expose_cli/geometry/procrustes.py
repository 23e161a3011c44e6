"""Similarity Procrustes (Umeyama): the scale, rotation and translation best mapping one point set
onto another in the least-squares sense. Used by every PA-* metric."""

from __future__ import annotations

import numpy as np
import torch


def similarity_procrustes(source, target):
    """Align ``source`` [B, N, 3] to ``target`` [B, N, 3].

    Returns ``(aligned, scale [B], R [B, 3, 3], t [B, 3])`` with ``aligned = scale * source @ R.T + t``.
    Reflection-safe: ``det(R) = +1``. Numpy inputs give numpy outputs.
    """
    is_numpy = isinstance(source, np.ndarray)
    src = torch.as_tensor(source, dtype=torch.float64)
    tgt = torch.as_tensor(target, dtype=torch.float64)
    squeeze = src.ndim == 2
    if squeeze:
        src, tgt = src[None], tgt[None]
    mu_s = src.mean(dim=1, keepdim=True)
    mu_t = tgt.mean(dim=1, keepdim=True)
    xs = src - mu_s
    xt = tgt - mu_t
    var_s = (xs**2).sum(dim=(1, 2))
    cov = xt.transpose(1, 2) @ xs  # [B, 3, 3] = sum target_i source_i^T
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(U @ Vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1))
    R = U @ D @ Vh
    scale = (S * torch.diagonal(D, dim1=-2, dim2=-1)).sum(-1) / var_s.clamp(min=1e-12)
    t = (
        mu_t.squeeze(1) - scale[:, None] * torch.einsum("bij,bj->bi", R, mu_s.squeeze(1))
    )
    aligned = scale[:, None, None] * src @ R.transpose(1, 2) + t[:, None, :]
    outs = (aligned, scale, R, t)
    if squeeze:
        outs = tuple(o[0] for o in outs)
    if is_numpy:
        return tuple(o.numpy() for o in outs)
    dtype = torch.as_tensor(source).dtype
    return tuple(o.to(dtype) for o in outs)
