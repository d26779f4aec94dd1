"""Multi-view input for every joint-embedding loss: per-view embeddings plus presence masks.

A *view* is one embedding of each site in the batch: one modality (cross-modal, the project's
point) or one augmentation of a modality (single-modality SSL is the same code with two views of
one modality). Every pair of co-located views of a site is a positive pair, as in the "full graph"
form of Contrastive Multiview Coding (Tian et al. 2019, arXiv:1906.05849). A site whose modality is
missing contributes only the pairs it has; its missing embedding is never used, not even as a
negative.

Loose input (a mapping or a sequence of tensors, masks or none) is normalised once here into
:class:`Views`; losses then work on typed tuples.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from jointssl.losses import distributed

ViewsLike = Mapping[str, Tensor] | Sequence[Tensor]
PresentLike = Mapping[str, Tensor] | Sequence[Tensor] | None


@dataclass(frozen=True)
class Views:
    names: tuple[str, ...]
    embeddings: tuple[Tensor, ...]
    """One [B D] tensor per view."""
    present: tuple[Tensor, ...]
    """One [B] bool tensor per view: does this site have this view."""

    @property
    def batch_size(self) -> int:
        return self.embeddings[0].shape[0]

    def pairs(self) -> list[tuple[int, int]]:
        """Every unordered pair of views (i < j)."""
        return list(itertools.combinations(range(len(self.names)), 2))


def as_views(views: ViewsLike, present: PresentLike = None, what: str = "embeddings") -> Views:
    """Check and normalise loss input: >= 2 views, each [B D] with one B and one D; masks [B] bool."""
    if isinstance(views, Mapping):
        names = tuple(str(k) for k in views)
        tensors = tuple(views.values())
    elif isinstance(views, Sequence):  # a Tensor is no Sequence: a stacked [V B D] tensor is refused below
        names = tuple(str(i) for i in range(len(views)))
        tensors = tuple(views)
    else:
        raise ValueError(f"{what}: expected a mapping or a list of [B D] tensors, got {type(views).__name__}")
    if len(tensors) < 2:
        raise ValueError(f"{what}: need at least 2 views to form a pair, got {len(tensors)}")
    for name, z in zip(names, tensors):
        if not isinstance(z, Tensor) or z.dim() != 2:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"{what}['{name}']: expected a [B D] tensor, got shape {shape}")
    shapes = {tuple(z.shape) for z in tensors}
    if len(shapes) != 1:
        got = ", ".join(f"{n}: {tuple(z.shape)}" for n, z in zip(names, tensors))
        raise ValueError(f"{what}: every view must have the same [B D] shape, got {got}")
    batch = tensors[0].shape[0]
    masks = _as_masks(names, present, batch, tensors[0].device, what)
    return Views(names, tensors, masks)


def _as_masks(names: tuple[str, ...], present: PresentLike, batch: int, device: torch.device,
              what: str) -> tuple[Tensor, ...]:
    if present is None:
        return tuple(torch.ones(batch, dtype=torch.bool, device=device) for _ in names)
    if isinstance(present, Mapping):
        if set(map(str, present)) != set(names):
            raise ValueError(f"{what}: presence masks are for {sorted(map(str, present))} "
                             f"but the views are {sorted(names)}")
        masks = tuple(present[n] for n in names)
    else:
        masks = tuple(present)
        if len(masks) != len(names):
            raise ValueError(f"{what}: {len(masks)} presence masks for {len(names)} views")
    for name, m in zip(names, masks):
        if not isinstance(m, Tensor) or m.dtype != torch.bool or tuple(m.shape) != (batch,):
            got = f"{m.dtype} {tuple(m.shape)}" if isinstance(m, Tensor) else type(m).__name__
            raise ValueError(f"{what}: presence mask of '{name}' must be a [B]={batch} bool tensor, got {got}")
    return masks


def gather_views(views: Views) -> Views:
    """Every rank's shard of every view (gradients flow back); the identity without DDP."""
    if not distributed.is_distributed():
        return views
    return Views(
        views.names,
        tuple(distributed.gather(z) for z in views.embeddings),
        tuple(distributed.gather(m) for m in views.present),
    )


PairLoss = Callable[[int, int], tuple[Tensor, int]]


def mean_over_pairs(views: Views, pair_loss: PairLoss, *inputs: Views) -> Tensor:
    """Average ``pair_loss(i, j) -> (loss, sites)`` over view pairs i < j, weighted by ``sites``.

    ``sites`` is the number of sites that have both views, so every (site, pair) counts once and a
    site missing a modality simply has fewer pairs. Pairs without sites are skipped. The result
    stays connected to every input in ``views`` and ``inputs`` (with zero gradient where a view has no
    usable pair, or none at all), so backward and DDP's gradient hooks run as usual.
    """
    # zero that touches every input: views without a usable pair stay in the autograd graph, as
    # DDP requires every parameter to receive a gradient on every rank
    connected = torch.stack([z.sum() for v in (views, *inputs) for z in v.embeddings]).sum() * 0.0
    total: Tensor | None = None
    sites = 0
    for i, j in views.pairs():
        loss, n = pair_loss(i, j)
        if n == 0:
            continue
        total = loss * n if total is None else total + loss * n
        sites += n
    if total is None:
        return connected
    return total / sites + connected
