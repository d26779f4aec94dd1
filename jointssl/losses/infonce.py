"""InfoNCE / NT-Xent: SimCLR's contrastive loss, and its CLIP-style cross-modal form, over many views.

Chen, Kornblith, Norouzi, Hinton 2020, "A Simple Framework for Contrastive Learning of Visual
Representations" (SimCLR), arXiv:2002.05709, eq. (1): for a positive pair (i, j)

    l(i, j) = -log exp(sim(z_i, z_j) / t) / sum_{k != i} exp(sim(z_i, z_k) / t)

with cosine similarity, over the 2N augmented samples (N sites, two views): the negatives of an
anchor are the other N-1 sites in *both* views (``negatives="all"``). Radford et al. 2021 (CLIP,
arXiv:2103.00020) contrast one modality against the other only: the negatives of an image are the
other sites' texts (``negatives="cross"``). Both are averaged over the two directions, so swapping
the views gives the same loss.

Why this form here: co-located images from different sensors are positives (Tian et al. 2019,
arXiv:1906.05849, CMC "full graph"): with >= 3 modalities every pair of present views is a positive
pair and the loss is the mean over all (site, pair) terms. Missing views are neither anchors nor
negatives. Under DDP the negatives come from the global batch (SimCLR trains with 4096-sample
batches across accelerators); see :mod:`jointssl.losses.distributed` for the convention.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jointssl.losses.views import PresentLike, ViewsLike, as_views, gather_views, mean_over_pairs

Negatives = Literal["all", "cross"]


def anchor_losses(x: Tensor, y: Tensor, present_x: Tensor, present_y: Tensor, anchors: Tensor,
                  temperature: float, negatives: Negatives) -> Tensor:
    """Per-anchor InfoNCE of view ``x`` against view ``y``: ``[B D] x2 -> [A]`` for the A anchors.

    ``x`` and ``y`` are L2-normalised; ``anchors`` ([A] long) index sites that have both views;
    anchor k's positive is ``y[anchors[k]]``. Candidates: every present site of ``y``, plus (``"all"``)
    every present site of ``x`` except the anchor itself.
    """
    xa = x[anchors]  # [A D]
    cross = xa @ y.T / temperature  # [A D] x [D B] -> [A B]
    cross = cross.masked_fill(~present_y[None, :], float("-inf"))
    positive = cross.gather(1, anchors[:, None]).squeeze(1)  # [A]
    logits = cross
    if negatives == "all":
        own = xa @ x.T / temperature  # [A B]
        self_hit = torch.zeros_like(own, dtype=torch.bool).scatter_(1, anchors[:, None], True)
        own = own.masked_fill(self_hit | ~present_x[None, :], float("-inf"))
        logits = torch.cat([cross, own], dim=1)  # [A 2B]
    return torch.logsumexp(logits, dim=1) - positive  # [A]


def info_nce_pair(a: Tensor, b: Tensor, present_a: Tensor, present_b: Tensor,
                  temperature: float = 0.1, negatives: Negatives = "all") -> tuple[Tensor, int]:
    """Symmetric InfoNCE of one view pair: (mean over sites having both views, number of such sites)."""
    a = F.normalize(a, dim=1)  # [B D]
    b = F.normalize(b, dim=1)
    anchors = torch.nonzero(present_a & present_b).squeeze(1)  # [A]
    if anchors.numel() == 0:
        return a.new_zeros(()), 0
    ab = anchor_losses(a, b, present_a, present_b, anchors, temperature, negatives)  # [A]
    ba = anchor_losses(b, a, present_b, present_a, anchors, temperature, negatives)  # [A]
    return ((ab + ba) / 2).mean(), int(anchors.numel())


class InfoNCELoss(nn.Module):
    """NT-Xent over all pairs of present views; one value on every rank under DDP.

    Args:
        temperature: softmax temperature t; SimCLR uses 0.1 on ImageNet (0.5 on CIFAR-10), CLIP
            starts its learned temperature at 0.07.
        negatives: ``"all"`` (SimCLR: the other sites in both views) or ``"cross"`` (CLIP: the
            other sites in the other view only).
    """

    momentum_target: ClassVar[bool] = False

    def __init__(self, temperature: float = 0.1, negatives: Negatives = "all"):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if negatives not in ("all", "cross"):
            raise ValueError(f"negatives must be 'all' or 'cross', got {negatives!r}")
        self.temperature = temperature
        self.negatives: Negatives = negatives

    def forward(self, embeddings: ViewsLike, present: PresentLike = None) -> Tensor:
        """``{view: [B D]}`` (+ ``{view: [B] bool}``) -> scalar loss."""
        views = gather_views(as_views(embeddings, present))

        def pair(i: int, j: int) -> tuple[Tensor, int]:
            return info_nce_pair(views.embeddings[i], views.embeddings[j], views.present[i],
                                 views.present[j], self.temperature, self.negatives)

        return mean_over_pairs(views, pair)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, negatives={self.negatives!r}"
