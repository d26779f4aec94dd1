"""Barlow Twins: make the cross-correlation of two views' embeddings the identity.

Zbontar, Jing, Misra, LeCun, Deny 2021, "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction", ICML 2021, arXiv:2103.03230, eq. (1)-(2), reference code
github.com/facebookresearch/barlowtwins (``main.py``):

    C_ij = sum_b zA_bi zB_bj / N      (each embedding batch-normalised over the batch)
    loss = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2

The invariance term pulls co-located views together; the redundancy-reduction term decorrelates
dimensions, so collapse is avoided without negatives. lambda = 5e-3 in the paper (the reference
code's default is 0.0051). The batch norm is ``BatchNorm1d(affine=False)`` in training mode, i.e.
standardisation with the biased variance and eps = 1e-5; the reference code makes it a
SyncBatchNorm and all-reduces C, i.e. statistics over the global batch, which gathering the
embeddings (:mod:`jointssl.losses.distributed`) reproduces. Several views: mean over pairs.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from jointssl.losses.vicreg import off_diagonal
from jointssl.losses.views import PresentLike, ViewsLike, as_views, gather_views, mean_over_pairs


def batch_standardize(z: Tensor, eps: float = 1e-5) -> Tensor:
    """``[N D] -> [N D]`` as BatchNorm1d(affine=False) in training mode: biased variance."""
    mean = z.mean(dim=0)  # [D]
    var = z.var(dim=0, unbiased=False)  # [D]
    return (z - mean) / torch.sqrt(var + eps)


def cross_correlation(a: Tensor, b: Tensor, eps: float = 1e-5) -> Tensor:
    """``[N D] x2 -> [D D]`` cross-correlation of the batch-standardised embeddings."""
    n = a.shape[0]
    return batch_standardize(a, eps).T @ batch_standardize(b, eps) / n  # [D N] x [N D] -> [D D]


def barlow_twins_loss(a: Tensor, b: Tensor, off_diagonal_weight: float = 5e-3, eps: float = 1e-5) -> Tensor:
    """Two-view Barlow Twins of ``[N D]`` embeddings (N >= 2)."""
    c = cross_correlation(a, b, eps)  # [D D]
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = off_diagonal(c).pow(2).sum()
    return on + off_diagonal_weight * off


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins over all pairs of present views; statistics over the global batch under DDP.

    Args:
        off_diagonal_weight: lambda, 5e-3 in the paper.
        eps: batch-norm epsilon, 1e-5 (PyTorch's BatchNorm1d default, as in the reference code).
    """

    momentum_target: ClassVar[bool] = False

    def __init__(self, off_diagonal_weight: float = 5e-3, eps: float = 1e-5):
        super().__init__()
        if off_diagonal_weight < 0:
            raise ValueError(f"off_diagonal_weight must be >= 0, got {off_diagonal_weight}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.off_diagonal_weight = off_diagonal_weight
        self.eps = eps

    def forward(self, embeddings: ViewsLike, present: PresentLike = None) -> Tensor:
        """``{view: [B D]}`` (+ ``{view: [B] bool}``) -> scalar loss; pairs with < 2 sites are skipped."""
        views = gather_views(as_views(embeddings, present))

        def pair(i: int, j: int) -> tuple[Tensor, int]:
            both = views.present[i] & views.present[j]  # [B]
            n = int(both.sum())
            if n < 2:  # batch statistics need two samples
                return views.embeddings[i].new_zeros(()), 0
            a, b = views.embeddings[i][both], views.embeddings[j][both]  # [N D]
            return barlow_twins_loss(a, b, self.off_diagonal_weight, self.eps), n

        return mean_over_pairs(views, pair)

    def extra_repr(self) -> str:
        return f"off_diagonal_weight={self.off_diagonal_weight}"
