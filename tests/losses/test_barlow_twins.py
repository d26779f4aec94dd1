"""Barlow Twins against an explicit cross-correlation loop (Zbontar et al. 2021, eq. (1)-(2))."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from jointssl.losses import BarlowTwinsLoss, build_loss
from jointssl.losses.barlow_twins import barlow_twins_loss


def reference_pair(a: torch.Tensor, b: torch.Tensor, lam: float = 5e-3, eps: float = 1e-5) -> float:
    a, b = a.double().tolist(), b.double().tolist()
    n, d = len(a), len(a[0])

    def standardize(z):
        out = [[0.0] * d for _ in range(n)]
        for i in range(d):
            mean = sum(z[k][i] for k in range(n)) / n
            var = sum((z[k][i] - mean) ** 2 for k in range(n)) / n  # biased, as BatchNorm1d trains
            for k in range(n):
                out[k][i] = (z[k][i] - mean) / math.sqrt(var + eps)
        return out

    za, zb = standardize(a), standardize(b)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(za[k][i] * zb[k][j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lam * c * c
    return loss


def make(n_views=3, batch=7, dim=4, seed=2):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g) for _ in range(n_views)]


MASKS = [torch.tensor([1, 1, 1, 0, 1, 1, 1]).bool(), torch.ones(7, dtype=torch.bool),
         torch.tensor([0, 1, 1, 1, 0, 1, 1]).bool()]


def test_pair_matches_reference() -> None:
    a, b = make(2)
    assert barlow_twins_loss(a, b).item() == pytest.approx(reference_pair(a, b), rel=1e-5)
    assert barlow_twins_loss(a, b, 0.1).item() == pytest.approx(reference_pair(a, b, 0.1), rel=1e-5)


def test_known_value_perfectly_correlated_dimensions() -> None:
    # both dims are the same +-1 signal: C is all c = 1/(1+eps): diagonal ~ 1, off-diagonal ~ 1
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    c = 1 / (1 + 1e-5)
    expected = 2 * (1 - c) ** 2 + 5e-3 * 2 * c * c
    assert barlow_twins_loss(z, z.clone()).item() == pytest.approx(expected, rel=1e-5)


def test_multi_view_with_missing_matches_reference() -> None:
    views = make()
    loss = BarlowTwinsLoss()(views, MASKS)
    total, sites = 0.0, 0
    for i, j in itertools.combinations(range(3), 2):
        both = MASKS[i] & MASKS[j]
        total += reference_pair(views[i][both], views[j][both]) * int(both.sum())
        sites += int(both.sum())
    assert loss.item() == pytest.approx(total / sites, rel=1e-5)


def test_symmetric_and_default_lambda() -> None:
    a, b = make(2)
    loss = build_loss("barlow_twins")
    assert loss.off_diagonal_weight == 5e-3
    assert loss([a, b]).item() == pytest.approx(loss([b, a]).item(), rel=1e-6)


def test_missing_sites_drop_out_and_gradient_flows() -> None:
    views = [v.requires_grad_() for v in make()]
    loss = BarlowTwinsLoss()(views, MASKS)
    loss.backward()
    for v, m in zip(views, MASKS):
        assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad[m].abs().sum() > 0
        assert torch.all(v.grad[~m] == 0)
    moved = [v.detach().clone() for v in views]
    moved[2][0] = 99.0
    assert BarlowTwinsLoss()(moved, MASKS).item() == pytest.approx(loss.item(), rel=1e-6)


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="same"):
        BarlowTwinsLoss()([torch.randn(4, 3), torch.randn(3, 3)])
    with pytest.raises(ValueError, match="at least 2 views"):
        BarlowTwinsLoss()({"s2": torch.randn(4, 3)})
    with pytest.raises(ValueError, match="off_diagonal_weight"):
        BarlowTwinsLoss(off_diagonal_weight=-1.0)
