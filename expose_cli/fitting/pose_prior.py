"""The optional GMM pose prior (MMHuman3D's ``MaxMixturePrior``, from SMPLify), per row.

For each component ``m`` of the mixture (means ``mu_m``, covariances ``C_m``, weights ``w_m``)
the negative log-likelihood of the body pose ``x`` (69 axis-angle values, radians) is

    E_m(x) = 0.5 (x - mu_m)^T C_m^-1 (x - mu_m) - log(w_m / ((2 pi)^(69/2) sqrt(det C_m) / min_k sqrt(det C_k)))

and the prior is ``min_m E_m(x)`` (the "max mixture": the likeliest component alone), as
MMHuman3D's ``merged_log_likelihood`` computes it (the determinants relative to the smallest).
MMHuman3D weights it by ``4.78^2`` and sums it over the batch. SMPL-X's body pose has 21 joints
(63 values): SMPL's two hand joints (the last 6 values) are then taken as 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from expose_cli.body_models.gmm_prior import GMM_DIM, load_gmm_arrays


class GMMPosePrior(nn.Module):
    """``forward(body_pose [B, 69 or 63]) -> [B]``: the max-mixture negative log-likelihood."""

    def __init__(self, means: np.ndarray, covars: np.ndarray, weights: np.ndarray) -> None:
        super().__init__()
        means, covars, weights = (np.asarray(a, dtype=np.float64) for a in (means, covars, weights))
        _, logdet = np.linalg.slogdet(covars)  # [M]: log det C_m, without overflow
        log_nll_weights = (np.log(weights) - 0.5 * GMM_DIM * np.log(2.0 * np.pi)
                           - 0.5 * (logdet - logdet.min()))
        self.register_buffer("means", torch.tensor(means, dtype=torch.float32))
        self.register_buffer("precisions", torch.tensor(np.linalg.inv(covars), dtype=torch.float32))
        self.register_buffer("log_nll_weights", torch.tensor(log_nll_weights, dtype=torch.float32))

    @classmethod
    def from_file(cls, path: str | Path) -> GMMPosePrior:
        """Read SMPLify's ``gmm_08.pkl`` (checked; one clear error otherwise)."""
        arrays = load_gmm_arrays(path)
        return cls(arrays["means"], arrays["covars"], arrays["weights"])

    @property
    def device(self) -> torch.device:
        return self.means.device

    def component_nll(self, body_pose: torch.Tensor) -> torch.Tensor:
        """``[B, M]``: ``E_m`` of each row under each component."""
        flat = body_pose.reshape(body_pose.shape[0], -1)
        if flat.shape[1] == GMM_DIM - 6:  # SMPL-X: SMPL's hand joints at rest
            flat = torch.cat([flat, flat.new_zeros(flat.shape[0], 6)], dim=1)
        diff = flat[:, None, :] - self.means.to(flat.dtype)  # [B, M, 69]
        quad = torch.einsum("bmi,mij,bmj->bm", diff, self.precisions.to(flat.dtype), diff)
        return 0.5 * quad - self.log_nll_weights.to(flat.dtype)

    def forward(self, body_pose: torch.Tensor) -> torch.Tensor:
        return self.component_nll(body_pose).min(dim=1).values


def load_pose_prior(name: str, path: Path, device: torch.device | str = "cpu") -> GMMPosePrior | None:
    """The prior ``fit.pose_prior`` names (``none``: ``None``; ``gmm``: ``path``, the data tree's
    ``gmm_08.pkl``), on ``device``; a missing or bad file stops the run before any work."""
    if name == "none":
        return None
    if not Path(path).is_file():
        from expose_cli.errors import ExposeError

        raise ExposeError("fit.pose_prior=gmm needs SMPLify's GMM pose prior, which is not installed",
                          hint="`expose import-body-models gmm_08.pkl` (from https://smplify.is.tue.mpg.de), "
                          "or leave fit.pose_prior at none", path=path, exit_code=2)
    return GMMPosePrior.from_file(path).to(device)
