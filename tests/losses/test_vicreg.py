"""VICReg against explicit per-dimension formulas of Bardes et al. 2022, eq. (1)-(6)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from jointssl.losses import VICRegLoss, build_loss
from jointssl.losses.vicreg import covariance_loss, invariance_loss, variance_loss, vicreg_loss


def reference_pair(a: torch.Tensor, b: torch.Tensor, lam=25.0, mu=25.0, nu=1.0, gamma=1.0, eps=1e-4) -> float:
    a, b = a.double().tolist(), b.double().tolist()
    n, d = len(a), len(a[0])
    inv = sum((a[k][i] - b[k][i]) ** 2 for k in range(n) for i in range(d)) / (n * d)

    def var(z):
        out = 0.0
        for i in range(d):
            mean = sum(z[k][i] for k in range(n)) / n
            std = math.sqrt(sum((z[k][i] - mean) ** 2 for k in range(n)) / (n - 1) + eps)
            out += max(0.0, gamma - std)
        return out / d

    def cov(z):
        means = [sum(z[k][i] for k in range(n)) / n for i in range(d)]
        out = 0.0
        for i in range(d):
            for j in range(d):
                if i != j:
                    c = sum((z[k][i] - means[i]) * (z[k][j] - means[j]) for k in range(n)) / (n - 1)
                    out += c * c
        return out / d

    return lam * inv + mu * (var(a) + var(b)) / 2 + nu * (cov(a) + cov(b))


def reference(views, present) -> float:
    total, sites = 0.0, 0
    for i, j in itertools.combinations(range(len(views)), 2):
        both = present[i] & present[j]
        n = int(both.sum())
        if n < 2:
            continue
        total += reference_pair(views[i][both], views[j][both]) * n
        sites += n
    return total / sites


def make(n_views=3, batch=7, dim=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g) * 0.7 for _ in range(n_views)]


MASKS = [torch.tensor([1, 1, 1, 0, 1, 1, 1]).bool(), torch.ones(7, dtype=torch.bool),
         torch.tensor([1, 0, 1, 1, 0, 1, 1]).bool()]


def test_terms_match_reference() -> None:
    a, b = make(2)
    assert invariance_loss(a, b).item() == pytest.approx(reference_pair(a, b, 1, 0, 0), rel=1e-5)
    assert (variance_loss(a) + variance_loss(b)).item() / 2 == pytest.approx(reference_pair(a, b, 0, 1, 0), rel=1e-5)
    assert (covariance_loss(a) + covariance_loss(b)).item() == pytest.approx(reference_pair(a, b, 0, 0, 1), rel=1e-5)
    assert vicreg_loss(a, b).item() == pytest.approx(reference_pair(a, b), rel=1e-5)


def test_known_value() -> None:
    # dim 0 has std sqrt(2) (no hinge), dim 1 is constant (std sqrt(1e-4) = 0.01), no covariance
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert vicreg_loss(z, z.clone()).item() == pytest.approx(25 * 0.99 / 2, rel=1e-6)


def test_multi_view_with_missing_matches_reference() -> None:
    views = make()
    loss = VICRegLoss()({"naip": views[0], "s2": views[1], "s1": views[2]},
                        {"naip": MASKS[0], "s2": MASKS[1], "s1": MASKS[2]})
    assert loss.item() == pytest.approx(reference(views, MASKS), rel=1e-5)


def test_symmetric_and_defaults_are_the_papers() -> None:
    a, b = make(2)
    loss = build_loss("vicreg")
    assert (loss.invariance_weight, loss.variance_weight, loss.covariance_weight) == (25.0, 25.0, 1.0)
    assert loss([a, b]).item() == pytest.approx(loss([b, a]).item(), rel=1e-6)


def test_missing_sites_drop_out() -> None:
    a, b, c = make()
    loss = VICRegLoss()
    c2 = c.clone()
    c2[4] = 50.0  # site 4 has no third view
    assert loss([a, b, c2], MASKS).item() == pytest.approx(loss([a, b, c], MASKS).item(), rel=1e-6)
    single = torch.zeros(7, dtype=torch.bool)
    single[0] = True  # one site cannot give a variance: that pair is skipped
    assert loss([a, b, c], [MASKS[0], MASKS[1], single]).item() == pytest.approx(
        loss([a, b], MASKS[:2]).item(), rel=1e-6)


def test_gradient_flows() -> None:
    views = [v.requires_grad_() for v in make()]
    VICRegLoss()(views, MASKS).backward()
    for v, m in zip(views, MASKS):
        assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad[m].abs().sum() > 0
        assert torch.all(v.grad[~m] == 0)


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="same"):
        VICRegLoss()([torch.randn(4, 3), torch.randn(4, 5)])
    with pytest.raises(ValueError, match=r"\[B D\]"):
        VICRegLoss()([torch.randn(4, 3, 2), torch.randn(4, 3, 2)])
    with pytest.raises(ValueError, match="covariance_weight"):
        VICRegLoss(covariance_weight=-1.0)
