"""VICReg: Variance-Invariance-Covariance Regularization.

Bardes, Ponce, LeCun 2022, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022, arXiv:2105.04906, eq. (1)-(6), reference code
github.com/facebookresearch/vicreg (``main_vicreg.py``), which this follows term for term:

    loss = lambda * s(Z, Z') + mu * [v(Z) + v(Z')] / 2 + nu * [c(Z) + c(Z')]

* invariance ``s``: mean squared error between the two views (per element, as ``F.mse_loss``);
* variance ``v``: hinge on the per-dimension std, ``mean_j relu(gamma - sqrt(Var(z_j) + eps))``,
  gamma = 1, eps = 1e-4, keeps every dimension from collapsing;
* covariance ``c``: sum of squared off-diagonal covariances / D, decorrelates dimensions.

The paper's coefficients are lambda = mu = 25, nu = 1 (sec. 4.1). No negatives and no momentum
encoder are needed, which suits modalities with very different statistics. The variance and
covariance are batch statistics, so under DDP they are computed over the global batch (gathered,
see :mod:`jointssl.losses.distributed`). With several views the loss is averaged over all pairs of
present views, each on the sites that have both views.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jointssl.losses.views import PresentLike, ViewsLike, as_views, gather_views, mean_over_pairs


def invariance_loss(a: Tensor, b: Tensor) -> Tensor:
    """s(Z, Z'): ``[N D] x2 -> []`` mean squared error."""
    return F.mse_loss(a, b)


def variance_loss(z: Tensor, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    """v(Z): ``[N D] -> []`` mean over dimensions of relu(gamma - std), std unbiased (N - 1)."""
    std = torch.sqrt(z.var(dim=0) + eps)  # [D]
    return F.relu(gamma - std).mean()


def off_diagonal(m: Tensor) -> Tensor:
    """``[D D] -> [D*(D-1)]`` the off-diagonal entries."""
    d = m.shape[0]
    return m.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()


def covariance_loss(z: Tensor) -> Tensor:
    """c(Z): ``[N D] -> []`` sum of squared off-diagonal covariances, divided by D."""
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = z.T @ z / (n - 1)  # [D N] x [N D] -> [D D]
    return off_diagonal(cov).pow(2).sum() / d


def vicreg_loss(a: Tensor, b: Tensor, invariance_weight: float = 25.0, variance_weight: float = 25.0,
                covariance_weight: float = 1.0, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    """Two-view VICReg of ``[N D]`` embeddings (N >= 2)."""
    return (invariance_weight * invariance_loss(a, b)
            + variance_weight * (variance_loss(a, gamma, eps) + variance_loss(b, gamma, eps)) / 2
            + covariance_weight * (covariance_loss(a) + covariance_loss(b)))


class VICRegLoss(nn.Module):
    """VICReg over all pairs of present views, statistics over the global batch under DDP.

    Args:
        invariance_weight: lambda, 25 in the paper.
        variance_weight: mu, 25 in the paper.
        covariance_weight: nu, 1 in the paper.
        gamma: target std of each dimension, 1 in the paper.
        eps: numerical floor inside the std, 1e-4 in the paper.
    """

    momentum_target: ClassVar[bool] = False

    def __init__(self, invariance_weight: float = 25.0, variance_weight: float = 25.0,
                 covariance_weight: float = 1.0, gamma: float = 1.0, eps: float = 1e-4):
        super().__init__()
        for name, value in [("invariance_weight", invariance_weight), ("variance_weight", variance_weight),
                            ("covariance_weight", covariance_weight), ("gamma", gamma)]:
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.invariance_weight = invariance_weight
        self.variance_weight = variance_weight
        self.covariance_weight = covariance_weight
        self.gamma = gamma
        self.eps = eps

    def forward(self, embeddings: ViewsLike, present: PresentLike = None) -> Tensor:
        """``{view: [B D]}`` (+ ``{view: [B] bool}``) -> scalar loss; pairs with < 2 sites are skipped."""
        views = gather_views(as_views(embeddings, present))

        def pair(i: int, j: int) -> tuple[Tensor, int]:
            both = views.present[i] & views.present[j]  # [B]
            n = int(both.sum())
            if n < 2:  # variance and covariance need two samples
                return views.embeddings[i].new_zeros(()), 0
            a, b = views.embeddings[i][both], views.embeddings[j][both]  # [N D]
            return vicreg_loss(a, b, self.invariance_weight, self.variance_weight,
                               self.covariance_weight, self.gamma, self.eps), n

        return mean_over_pairs(views, pair)

    def extra_repr(self) -> str:
        return (f"invariance_weight={self.invariance_weight}, variance_weight={self.variance_weight}, "
                f"covariance_weight={self.covariance_weight}")
