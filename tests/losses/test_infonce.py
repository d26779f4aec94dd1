"""InfoNCE / NT-Xent against a loop-by-loop reference of SimCLR eq. (1) and the CLIP form."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from jointssl.losses import InfoNCELoss, build_loss


def reference(views: list[torch.Tensor], present: list[torch.Tensor], t: float, negatives: str) -> float:
    """Straight from the formula: every co-present site of every view pair, both directions."""
    views = [F.normalize(v.double(), dim=1) for v in views]
    total, count = 0.0, 0
    for i, j in itertools.combinations(range(len(views)), 2):
        for s in range(views[0].shape[0]):
            if not (present[i][s] and present[j][s]):
                continue
            for x, y, px, py in [(views[i], views[j], present[i], present[j]),
                                 (views[j], views[i], present[j], present[i])]:
                positive = math.exp(float(x[s] @ y[s]) / t)
                denominator = sum(math.exp(float(x[s] @ y[k]) / t) for k in range(len(y)) if py[k])
                if negatives == "all":
                    denominator += sum(math.exp(float(x[s] @ x[k]) / t) for k in range(len(x)) if px[k] and k != s)
                total += -math.log(positive / denominator) / 2
            count += 1
    return total / count


def make(n_views: int = 3, batch: int = 6, dim: int = 5, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g) for _ in range(n_views)]


MASKS = [torch.tensor([1, 1, 1, 0, 1, 1]).bool(), torch.ones(6, dtype=torch.bool),
         torch.tensor([1, 0, 1, 1, 1, 0]).bool()]


@pytest.mark.parametrize("negatives", ["all", "cross"])
@pytest.mark.parametrize("t", [0.1, 0.5])
def test_matches_reference_with_three_views_and_missing_modalities(negatives: str, t: float) -> None:
    views = make()
    loss = InfoNCELoss(temperature=t, negatives=negatives)({"naip": views[0], "s2": views[1], "s1": views[2]},
                                                           {"naip": MASKS[0], "s2": MASKS[1], "s1": MASKS[2]})
    assert loss.item() == pytest.approx(reference(views, MASKS, t, negatives), rel=1e-5)


def test_known_value_orthogonal_pairs() -> None:
    # two sites, each view identical: positive similarity 1, the other site's similarity 0
    a = torch.eye(2)
    cross = InfoNCELoss(temperature=1.0, negatives="cross")([a, a.clone()])
    assert cross.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    # NT-Xent adds the other site of the anchor's own view (similarity 0) as a negative
    full = InfoNCELoss(temperature=1.0, negatives="all")([a, a.clone()])
    assert full.item() == pytest.approx(math.log(1 + 2 * math.exp(-1)), rel=1e-6)


def test_symmetric_in_the_views() -> None:
    a, b, c = make()
    loss = InfoNCELoss()
    assert loss([a, b]).item() == pytest.approx(loss([b, a]).item(), rel=1e-6)
    assert loss([a, b, c], MASKS).item() == pytest.approx(
        loss([c, a, b], [MASKS[2], MASKS[0], MASKS[1]]).item(), rel=1e-6)


def test_missing_sites_are_neither_anchors_nor_negatives() -> None:
    a, b, c = make()
    loss = InfoNCELoss()
    before = loss([a, b, c], MASKS)
    c2 = c.clone()
    c2[1] = 100.0  # site 1 has no s1 view: its (garbage) embedding must not matter
    assert loss([a, b, c2], MASKS).item() == pytest.approx(before.item(), rel=1e-6)
    # a view absent everywhere contributes nothing: same as the loss of the other two views
    absent = torch.zeros(6, dtype=torch.bool)
    two = loss([a, b], MASKS[:2])
    assert loss([a, b, c], [MASKS[0], MASKS[1], absent]).item() == pytest.approx(two.item(), rel=1e-6)


def test_no_pair_present_gives_zero_that_backpropagates() -> None:
    a, b = (v.requires_grad_() for v in make(2))
    loss = InfoNCELoss()([a, b], [torch.zeros(6, dtype=torch.bool), torch.ones(6, dtype=torch.bool)])
    loss.backward()
    assert loss.item() == 0.0 and a.grad is not None and torch.all(a.grad == 0)


def test_gradient_flows_to_present_rows_only() -> None:
    views = [v.requires_grad_() for v in make()]
    InfoNCELoss()(views, MASKS).backward()
    for v, m in zip(views, MASKS):
        assert v.grad is not None and torch.isfinite(v.grad).all()
        assert v.grad[m].abs().sum() > 0
        assert torch.all(v.grad[~m] == 0)


@pytest.mark.parametrize("bad, message", [
    ([torch.randn(4, 3)], "at least 2 views"),
    ([torch.randn(4, 3), torch.randn(4)], r"expected a \[B D\] tensor"),
    ([torch.randn(4, 3), torch.randn(5, 3)], "same"),
    ([torch.randn(4, 3), torch.randn(4, 2)], "same"),
])
def test_bad_shapes_raise(bad: list[torch.Tensor], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InfoNCELoss()(bad)


def test_bad_masks_and_hyperparameters_raise() -> None:
    a, b = make(2)
    with pytest.raises(ValueError, match="bool tensor"):
        InfoNCELoss()([a, b], [torch.ones(6), torch.ones(6)])
    with pytest.raises(ValueError, match="presence masks are for"):
        InfoNCELoss()({"s2": a, "s1": b}, {"s2": MASKS[0], "naip": MASKS[1]})
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=0.0)
    with pytest.raises(ValueError, match="unknown objective"):
        build_loss("simsiam")
    with pytest.raises(ValueError, match="bad hyperparameters"):
        build_loss("infonce", tau=0.1)
