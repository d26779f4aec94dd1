"""A small, real methane classifier for the inference tests: a tiny random-init encoder and a logistic
head fitted on the world's labelled sites (site-centred chips plus chips shifted by up to half a tile
stride, as grid tiles see them), registered in an MLflow registry like 'jointssl evaluate' does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from jointssl.classify.model import MethaneClassifier, Standardize, fused_dim
from jointssl.data.dataset import ChipBatchLoader
from jointssl.labels import FACILITY_CLASSES
from jointssl.models.config import ModelConfig
from jointssl.models.multimodal import ModalityInput, MultiModalEncoder
from jointssl.sensors.contract import classifier_contract
from jointssl.train.loop import to_tensors

TINY = ModelConfig(backbone="resnet10t", shared_trunk=True, small_input_stem=False, embed_dim=16,
                   proj_hidden_dim=8, proj_dim=4)
SHIFT_M = 80.0
"""Training chips are also cut this far off each site's centre (grid tiles are up to ~half a stride off)."""


def shifted(table: pd.DataFrame, shift_m: float = SHIFT_M) -> pd.DataFrame:
    """The site table again with each site moved by (+-shift, +-shift) metres: 4 more rows per site."""
    parts = [table]
    for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        moved = table.copy()
        moved["lat"] = table["lat"] + dy * shift_m / 111_320.0
        moved["lon"] = table["lon"] + dx * shift_m / (111_320.0 * np.cos(np.radians(table["lat"])))
        parts.append(moved)
    return pd.concat(parts, ignore_index=True)


def build_classifier(table: pd.DataFrame, modalities: list, seed: int = 0, steps: int = 400) -> MethaneClassifier:
    """Encoder (random, seeded) + Standardize -> Linear head fitted with BCE on ``table``'s labels."""
    torch.manual_seed(seed)
    inputs = [ModalityInput.of(m) for m in modalities]
    encoder = MultiModalEncoder(TINY, inputs).eval()
    dim = fused_dim(16, len(inputs), "concat")
    model = MethaneClassifier(encoder, nn.Identity(), "concat", classifier_contract("world", modalities))
    batch = ChipBatchLoader(modalities)(table)
    with torch.no_grad():
        features = model.features(to_tensors(batch, inputs))  # [N D]
    labels = torch.from_numpy(batch["labels"])  # [N K]
    standardize = Standardize.fit(features)
    linear = nn.Linear(dim, len(FACILITY_CLASSES))
    optimiser = torch.optim.AdamW(linear.parameters(), lr=0.05, weight_decay=1e-3)
    x = standardize(features)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(linear(x), labels)
        loss.backward()
        optimiser.step()
    model.head = nn.Sequential(standardize, linear)
    return model.eval()


def register(model: MethaneClassifier, tracking_uri: str, name: str = "methane-classifier") -> str:
    """Log + register ``model`` (alias 'champion'); returns the version."""
    import mlflow

    from jointssl.classify.registry import register_classifier

    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("classifier") or None
    # a sqlite store keeps artifacts beside its database (MLflow's default would be ./mlruns in the checkout)
    beside = None
    if tracking_uri.startswith("sqlite:///"):
        beside = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    experiment_id = (experiment.experiment_id if experiment
                     else client.create_experiment("classifier", artifact_location=beside))
    run = client.create_run(experiment_id, run_name="test-classifier")
    registration = register_classifier(model, name, 0.9, tracking_uri, run.info.run_id)
    client.set_terminated(run.info.run_id)
    return registration.version
