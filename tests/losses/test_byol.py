"""BYOL: normalised MSE, symmetrisation, stop-gradient, EMA update and cosine momentum (Grill et al. 2020)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from jointssl.losses import BYOLLoss, cosine_momentum, ema_update, make_target


def reference(predictions, targets, present) -> float:
    def nmse(p, t):
        p = [x / math.sqrt(sum(y * y for y in p)) for x in p]
        t = [x / math.sqrt(sum(y * y for y in t)) for x in t]
        return sum((x - y) ** 2 for x, y in zip(p, t))

    total, sites = 0.0, 0
    for i, j in itertools.combinations(range(len(predictions)), 2):
        for s in range(predictions[0].shape[0]):
            if present[i][s] and present[j][s]:
                total += nmse(predictions[i][s].tolist(), targets[j][s].tolist())
                total += nmse(predictions[j][s].tolist(), targets[i][s].tolist())
                sites += 1
    return total / sites


def make(n_views=3, batch=5, dim=4, seed=3):
    g = torch.Generator().manual_seed(seed)
    return ([torch.randn(batch, dim, generator=g) for _ in range(n_views)],
            [torch.randn(batch, dim, generator=g) for _ in range(n_views)])


MASKS = [torch.tensor([1, 1, 0, 1, 1]).bool(), torch.ones(5, dtype=torch.bool), torch.tensor([1, 0, 1, 1, 0]).bool()]


def test_matches_reference_with_missing_modalities() -> None:
    p, t = make()
    assert BYOLLoss()(p, t, MASKS).item() == pytest.approx(reference(p, t, MASKS), rel=1e-5)


def test_known_values() -> None:
    e = torch.tensor([[1.0, 0.0]])
    f = torch.tensor([[0.0, 1.0]])
    # orthogonal in both directions: (2 - 0) + (2 - 0)
    assert BYOLLoss()([e, f], [e, f]).item() == pytest.approx(4.0)
    # prediction of each view equals the target of the other (up to scale): 0
    assert BYOLLoss()([e, 3 * f], [2 * f, e]).item() == pytest.approx(0.0, abs=1e-6)


def test_symmetric_in_the_views() -> None:
    (a, b, _), (ta, tb, _) = make()
    loss = BYOLLoss()
    assert loss([a, b], [ta, tb]).item() == pytest.approx(loss([b, a], [tb, ta]).item(), rel=1e-6)


def test_stop_gradient_on_targets_and_missing_rows() -> None:
    p, t = make()
    p = [x.requires_grad_() for x in p]
    t = [x.requires_grad_() for x in t]
    BYOLLoss()(p, t, MASKS).backward()
    for x, m in zip(p, MASKS):
        assert x.grad is not None and x.grad[m].abs().sum() > 0 and torch.all(x.grad[~m] == 0)
    assert all(x.grad is None for x in t)


def test_bad_input_raises() -> None:
    p, t = make()
    with pytest.raises(ValueError, match="same views and shape"):
        BYOLLoss()(p, [x[:, :2] for x in t])
    with pytest.raises(ValueError, match="at least 2 views"):
        BYOLLoss()(p[:1], t[:1])
    with pytest.raises(ValueError, match="base_momentum"):
        BYOLLoss(base_momentum=1.5)


def test_cosine_momentum_schedule() -> None:
    assert cosine_momentum(0, 100) == pytest.approx(0.996)
    assert cosine_momentum(50, 100) == pytest.approx(0.998)
    assert cosine_momentum(100, 100) == pytest.approx(1.0)
    assert BYOLLoss().momentum(25, 100) == pytest.approx(1 - 0.004 * (math.cos(math.pi / 4) + 1) / 2)
    with pytest.raises(ValueError, match="total_steps"):
        cosine_momentum(0, 0)


def test_ema_update() -> None:
    online = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    target = make_target(online)
    assert all(not p.requires_grad for p in target.parameters())
    before = [p.detach().clone() for p in target.parameters()]
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
        online[1].running_mean.fill_(7.0)
    ema_update(target, online, momentum=0.75)
    for old, new, theta in zip(before, target.parameters(), online.parameters()):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * theta.detach())
    assert torch.all(target[1].running_mean == 7.0)
    frozen = [p.clone() for p in target.parameters()]
    ema_update(target, online, momentum=1.0)
    for old, new in zip(frozen, target.parameters()):
        torch.testing.assert_close(new, old)
    with pytest.raises(ValueError, match="different parameters"):
        ema_update(nn.Linear(3, 2), online, 0.9)
