"""MethaneClassifier: fusion widths, modality dropout, sensor subsets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jointssl.classify.model import (
    MethaneClassifier,
    Standardize,
    drop_modalities,
    fuse,
    fused_dim,
)
from jointssl.labels import FACILITY_CLASSES
from jointssl.models.config import ModelConfig
from jointssl.models.multimodal import ModalityInput, MultiModalEncoder
from jointssl.sensors.contract import classifier_contract
from jointssl.sensors.registry import load_preset

TINY = ModelConfig(backbone="resnet10t", shared_trunk=True, small_input_stem=False, embed_dim=8,
                   proj_hidden_dim=8, proj_dim=4)


@pytest.fixture(scope="module")
def world() -> list:
    return list(load_preset("world").values())


def classifier_of(modalities, fusion="concat") -> MethaneClassifier:
    torch.manual_seed(0)
    encoder = MultiModalEncoder(TINY, [ModalityInput.of(m) for m in modalities])
    dim = fused_dim(8, len(modalities), fusion)
    head = nn.Sequential(Standardize(torch.zeros(dim), torch.ones(dim)), nn.Linear(dim, len(FACILITY_CLASSES)))
    return MethaneClassifier(encoder, head, fusion, classifier_contract("world", modalities))


def chips(modalities, size=3, present=None):
    batch = {}
    for m in modalities:
        batch[m.name] = torch.randn(size, len(m.bands), m.chip_size, m.chip_size)
        batch[f"{m.name}_present"] = torch.ones(size, dtype=torch.bool) if present is None else present[m.name]
    return batch


def test_fuse_concat_zeroes_absent_blocks_and_appends_flags():
    emb = {"a": torch.ones(2, 3), "b": 2 * torch.ones(2, 3)}
    present = {"a": torch.tensor([True, False]), "b": torch.tensor([True, True])}
    out = fuse(emb, present, ["a", "b"], "concat")
    assert out.shape == (2, fused_dim(3, 2, "concat")) == (2, 8)
    assert out[1, :3].abs().sum() == 0 and out[1, 3:6].tolist() == [2.0] * 3 and out[1, 6:].tolist() == [0, 1]
    mean = fuse(emb, present, ["a", "b"], "mean")
    assert mean.shape == (2, 5) and mean[0, :3].tolist() == [1.5] * 3 and mean[1, :3].tolist() == [2.0] * 3


def test_drop_modalities_never_hides_every_sensor_of_a_site():
    g = torch.Generator().manual_seed(0)
    present = {"a": torch.tensor([True, True, False] * 100), "b": torch.tensor([True, False, True] * 100)}
    kept = drop_modalities(present, p=0.9, generator=g)
    stacked = torch.stack([kept["a"], kept["b"]], dim=1)
    assert stacked.any(dim=1).all()  # every site keeps one sensor
    assert not (stacked & ~torch.stack([present["a"], present["b"]], dim=1)).any()  # never invents one
    assert stacked.sum() < torch.stack(list(present.values())).sum()  # and does hide some


def test_classifier_runs_on_every_subset_of_its_sensors(world):
    model = classifier_of(world).eval()
    full = model.predict_proba(chips(world))
    assert full.shape == (3, len(FACILITY_CLASSES)) and ((full > 0) & (full < 1)).all()
    only_s2 = model.predict_proba(chips([m for m in world if m.name == "s2"]))  # other sensors absent
    assert only_s2.shape == (3, 6) and not torch.allclose(torch.tensor(only_s2), torch.tensor(full))
