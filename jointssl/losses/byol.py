"""BYOL: predict a slowly moving (momentum) target network's projection of another view.

Grill et al. 2020, "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
NeurIPS 2020, arXiv:2006.07733, sec. 3.1:

* loss of one direction: ``||q/||q|| - z'/||z'|| ||^2 = 2 - 2 cos(q, z')`` between the online
  predictor output q of one view and the target projection z' of the other (eq. 2), with a stop
  gradient on the target; the total is symmetrised, ``L + L~`` (both directions summed);
* target parameters are an exponential moving average of the online ones,
  ``xi <- tau xi + (1 - tau) theta``, with ``tau`` raised from tau_base = 0.996 to 1 by a cosine
  schedule, ``tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2`` (sec. 3.2).

Why here: no negatives, so it does not depend on batch size, and sites missing a modality simply
drop out. Several views: every pair of present views, both directions, mean over (site, pair).
Predictions and targets are gathered under DDP only so that the mean over sites is the global one
when ranks hold different numbers of present sites.
"""

from __future__ import annotations

import copy
import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jointssl.losses.views import PresentLike, ViewsLike, as_views, gather_views, mean_over_pairs


def normalized_mse(prediction: Tensor, target: Tensor) -> Tensor:
    """``[N D] x2 -> [N]``: ``2 - 2 cos(prediction, target)``, no gradient into ``target``."""
    return 2 - 2 * F.cosine_similarity(prediction, target.detach(), dim=1)


def cosine_momentum(step: int, total_steps: int, base: float = 0.996) -> float:
    """Target EMA rate at ``step`` of ``total_steps``: ``base`` at step 0, rising to 1 at the end."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if not 0.0 <= base <= 1.0:
        raise ValueError(f"base momentum must be in [0, 1], got {base}")
    progress = min(max(step, 0), total_steps) / total_steps
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2


def make_target(online: nn.Module) -> nn.Module:
    """A frozen copy of ``online`` to serve as the momentum target (no gradients, same weights)."""
    target = copy.deepcopy(online)
    target.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``xi <- momentum * xi + (1 - momentum) * theta`` for every parameter, in place.

    Buffers (batch-norm running statistics) are copied from the online network: BYOL averages
    parameters; the running statistics only matter when the target is evaluated in eval mode.
    The two modules must have the same structure (``target`` from :func:`make_target`).
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    online_params = dict(online.named_parameters())
    target_params = dict(target.named_parameters())
    if online_params.keys() != target_params.keys():
        raise ValueError("target and online networks have different parameters; build the target with make_target")
    for name, xi in target_params.items():
        xi.lerp_(online_params[name].detach(), 1 - momentum)
    online_buffers = dict(online.named_buffers())
    for name, buf in target.named_buffers():
        buf.copy_(online_buffers[name])


class BYOLLoss(nn.Module):
    """Symmetrised BYOL loss over all pairs of present views.

    Args:
        base_momentum: tau_base of the target EMA, 0.996 in the paper; used by :meth:`momentum`.
    """

    momentum_target: ClassVar[bool] = True

    def __init__(self, base_momentum: float = 0.996):
        super().__init__()
        if not 0.0 <= base_momentum <= 1.0:
            raise ValueError(f"base_momentum must be in [0, 1], got {base_momentum}")
        self.base_momentum = base_momentum

    def momentum(self, step: int, total_steps: int) -> float:
        """The EMA rate for :func:`ema_update` at ``step`` (cosine schedule from base_momentum to 1)."""
        return cosine_momentum(step, total_steps, self.base_momentum)

    def forward(self, predictions: ViewsLike, targets: ViewsLike, present: PresentLike = None) -> Tensor:
        """Online predictions ``{view: [B D]}`` and target projections ``{view: [B D]}`` -> scalar."""
        online = as_views(predictions, present, what="predictions")
        target = as_views(targets, present, what="targets")
        if online.names != target.names or online.embeddings[0].shape != target.embeddings[0].shape:
            raise ValueError(f"predictions {list(online.names)} {tuple(online.embeddings[0].shape)} and targets "
                             f"{list(target.names)} {tuple(target.embeddings[0].shape)} "
                             "must have the same views and shape")
        online = gather_views(online)
        target = gather_views(target)

        def pair(i: int, j: int) -> tuple[Tensor, int]:
            both = online.present[i] & online.present[j]  # [B]
            n = int(both.sum())
            if n == 0:
                return online.embeddings[i].new_zeros(()), 0
            ij = normalized_mse(online.embeddings[i][both], target.embeddings[j][both])  # [N]
            ji = normalized_mse(online.embeddings[j][both], target.embeddings[i][both])  # [N]
            return (ij + ji).mean(), n

        return mean_over_pairs(online, pair)

    def extra_repr(self) -> str:
        return f"base_momentum={self.base_momentum}"
