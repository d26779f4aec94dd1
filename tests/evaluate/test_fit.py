"""Linear probes: the batched L2 grid gives the heads separate fits give, and scoring a probe from its
frozen embeddings gives what classifying the chips gives. End-to-end fits: standardising the head from the
probes' embeddings of the budget's sites gives the fit that embeds them again."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from jointssl.evaluate.data import Split
from jointssl.evaluate.fit import _train_heads, embed_split, fit_end_to_end, fit_probe, probe_probabilities
from jointssl.labels import FACILITY_CLASSES
from jointssl.models.config import ModelConfig
from jointssl.models.multimodal import ModalityInput, MultiModalEncoder
from jointssl.sensors.registry import load_preset

TINY = ModelConfig(backbone="resnet10t", shared_trunk=True, small_input_stem=False, embed_dim=8,
                   proj_hidden_dim=8, proj_dim=4)


def separate_head(z: torch.Tensor, y: torch.Tensor, penalty: float, epochs: int, lr: float, seed: int) -> nn.Linear:
    """One probe head fitted on its own: the reference the batched grid must reproduce."""
    torch.manual_seed(seed)
    linear = nn.Linear(z.shape[1], y.shape[1])
    opt = torch.optim.Adam(linear.parameters(), lr=lr)
    for _ in range(epochs):
        loss = nn.functional.binary_cross_entropy_with_logits(linear(z), y) + penalty * linear.weight.pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return linear


def test_the_batched_l2_grid_trains_the_heads_separate_fits_train():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(40, 12, generator=g)  # [N D]
    y = (torch.rand(40, 6, generator=g) > 0.7).float()  # [N K]
    l2 = [1e-4, 1e-2, 1.0]
    heads = _train_heads(z, y, l2, epochs=60, lr=1e-2, seed=3)
    for penalty, head in zip(l2, heads, strict=True):
        ref = separate_head(z, y, penalty, epochs=60, lr=1e-2, seed=3)
        torch.testing.assert_close(head.weight, ref.weight, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(head.bias, ref.bias, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(heads[0].weight, heads[-1].weight)  # the penalty matters


def tiny_encoder() -> MultiModalEncoder:
    torch.manual_seed(0)
    return MultiModalEncoder(TINY, [ModalityInput.of(m) for m in load_preset("world").values()]).eval()


def random_split(n: int, rng: np.random.Generator) -> Split:
    chips: dict[str, torch.Tensor] = {}
    for m in load_preset("world").values():
        chips[m.name] = torch.randn(n, len(m.bands), m.chip_size, m.chip_size)
        chips[f"{m.name}_present"] = torch.as_tensor(rng.random(n) > 0.2)
    labels = (rng.random((n, len(FACILITY_CLASSES))) > 0.7).astype(np.float32)
    return Split(chips, labels, [f"s{i}" for i in range(n)])


@pytest.mark.parametrize("modalities", [("naip", "s2", "s1"), ("s2",)])
def test_a_probe_scored_from_its_embeddings_matches_classifying_the_chips(modalities):
    encoder = tiny_encoder()
    rng = np.random.default_rng(0)
    train, val = random_split(12, rng), random_split(8, rng)
    tr, va = embed_split(encoder, train), embed_split(encoder, val)
    fitted = fit_probe(encoder, list(modalities), tr, train.labels, va, val.labels, fusions=["concat", "mean"],
                       epochs=20, lr=1e-2, l2=[1e-3, 1e-1], sensors={}, seed=0)
    from_chips = fitted.classifier.predict_proba(val.chips, calibrated=False)
    np.testing.assert_allclose(probe_probabilities(fitted.classifier, modalities, va), from_chips, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fitted.probs_val, from_chips, rtol=1e-5, atol=1e-6)


def test_an_end_to_end_fit_standardised_from_the_probes_embeddings_is_the_fit_that_embeds_again():
    encoder = tiny_encoder()
    rng = np.random.default_rng(1)
    train, val = random_split(8, rng), random_split(4, rng)
    budget = np.array([0, 2, 3, 5, 7])
    args = {"fusion": "concat", "epochs": 1, "batch_size": 4, "lr": 1e-3, "dropout": 0.2, "sensors": {}, "seed": 0}
    again = fit_end_to_end(encoder, train.subset(budget), val, **args)
    cached = fit_end_to_end(encoder, train.subset(budget), val, embedded=embed_split(encoder, train).subset(budget),
                            **args)
    np.testing.assert_allclose(cached.probs_val, again.probs_val, rtol=1e-5, atol=1e-6)
    assert cached.detail == again.detail
    wrong = fit_end_to_end(encoder, train.subset(budget), val, embedded=embed_split(encoder, val), **args)
    assert not np.allclose(wrong.probs_val, again.probs_val, atol=1e-4)  # the statistics are used
