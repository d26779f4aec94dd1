"""Collectives for losses that need the global batch under DDP, and no-ops without a process group.

Contrastive negatives (SimCLR, Chen et al. 2020, arXiv:2002.05709, sec. 2 "Training with large batch
size") and batch statistics (VICReg's variance/covariance, Bardes et al. 2022, arXiv:2105.04906;
Barlow Twins' cross-correlation, Zbontar et al. 2021, arXiv:2103.03230) are defined over the whole
batch, so a data-parallel run must see every rank's embeddings, not just its own shard.

Convention used by every loss in :mod:`jointssl.losses`: each rank gathers all shards (gradient
flowing back to its own shard) and computes the loss on the global batch, so every rank reports the
same value, equal to the single-process loss on the concatenated batch. The backward of
:func:`gather` *sums* the gradients that all ranks computed for a shard, so the local shard receives
``world_size * dL/d(shard)``; DDP then averages parameter gradients over ranks (divides by
``world_size``), which gives exactly the single-process gradient. Uneven shard sizes (a short last
batch, a rank with fewer present sites) are padded for the collective and trimmed again.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def shard_sizes(n: int, device: torch.device) -> list[int]:
    """The first-dimension size of every rank's shard, in rank order (``[n]`` without a group)."""
    if not is_distributed():
        return [n]
    local = torch.tensor([n], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, local)
    return [int(s.item()) for s in sizes]


def _all_gather_padded(x: Tensor, sizes: list[int]) -> Tensor:
    """Concatenate every rank's ``x`` along dim 0; shards may differ in size along dim 0 only."""
    longest = max(sizes)
    padded = x.new_zeros((longest, *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:n] for part, n in zip(parts, sizes)], dim=0)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient for this rank's shard (all_reduce)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, sizes: list[int]) -> Tensor:
        ctx.sizes = sizes
        ctx.rank = dist.get_rank()
        return _all_gather_padded(x, sizes)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def gather(x: Tensor) -> Tensor:
    """``[b ...]`` on each rank -> ``[sum(b) ...]`` on every rank, in rank order; identity without DDP.

    Differentiable: the gradient flows back to the local shard (see the module docstring for the
    scaling). Boolean tensors (presence masks) are gathered without gradient. Every rank must call
    this in the same order with tensors of the same trailing shape and dtype.
    """
    if not is_distributed():
        return x
    sizes = shard_sizes(x.shape[0], x.device)
    if x.dtype == torch.bool:  # gloo has no bool collectives
        return _all_gather_padded(x.to(torch.uint8), sizes).bool()
    if x.requires_grad:
        gathered: Tensor = _GatherWithGrad.apply(x, sizes)  # Function.apply is typed to return Any
        return gathered
    return _all_gather_padded(x, sizes)
