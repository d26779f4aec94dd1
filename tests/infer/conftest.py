"""One small world, its index and a fitted, registered classifier, shared by every inference test.

The 'test' world profile (40 sites, 28 labelled, scattered over the US; each STAC item covers one
480 m site footprint) is generated once per session under a temp storage root; the classifier is a
tiny random-init encoder with a logistic head fitted on the labelled sites (tests/infer/classifier.py)
and registered as ``methane-classifier@champion`` in a sqlite MLflow there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

US = [-125.0, 24.0, -66.0, 50.0]
"""A bbox holding every site of the world."""


@dataclass
class InferWorld:
    root: Path
    """storage.root of the world, index and MLflow."""
    tracking_uri: str
    model: object
    """The fitted MethaneClassifier (registered as version 1, alias champion)."""
    modalities: list
    sites: pd.DataFrame
    """The world's sites.parquet (ground truth: labels of labelled sites)."""
    table: pd.DataFrame
    """The index's site table (site-centred items), as evaluation would read it."""

    def args(self, *extra: str) -> list[str]:
        """CLI arguments of an infer run on this world."""
        return ["--config", "configs/test.yaml", "--storage.root", str(self.root),
                "--tracking.uri", self.tracking_uri, *extra]


@pytest.fixture(scope="session")
def infer_world(tmp_path_factory) -> InferWorld:
    import geopandas as gpd
    import torch

    from jointssl.config import load_job_config
    from jointssl.data.index_job import run_index
    from jointssl.data.pipeline import load_site_table, modalities_of
    from jointssl.world.publish import generate_world
    from tests.infer.classifier import build_classifier, register, shifted

    root = tmp_path_factory.mktemp("infer")
    config = load_job_config("configs/test.yaml", ["--storage.root", str(root)])
    generate_world(config, progress=False)
    run_index(config)
    table = load_site_table(config)
    modalities = modalities_of(config)
    labelled = table[np.array([s != "unlabelled" for s in table["split"]])].reset_index(drop=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # faster than 2 on a shared 2-core machine
    try:
        model = build_classifier(shifted(labelled), modalities)
    finally:
        torch.set_num_threads(threads)
    uri = f"sqlite:///{root}/mlflow.db"
    register(model, uri)
    sites = gpd.read_parquet(root / "world" / "sites.parquet")
    return InferWorld(root, uri, model, modalities, sites, table)
