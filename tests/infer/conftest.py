"""One small world, its index and a fitted, registered classifier, shared by every inference test.

The 'test' world profile (40 sites, 28 labelled, scattered over the US; each STAC item covers one
480 m site footprint) is generated once per session under a temp storage root; the classifier is a
tiny random-init encoder with a logistic head fitted on the labelled sites (tests/infer/classifier.py)
and registered as ``methane-classifier@champion`` in a sqlite MLflow there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def append_new_acquisitions(items_file: Path, sites: list[str]) -> list[dict[str, Any]]:
    """Append to a world's ``<collection>.ndjson`` a cloud-free copy of each site's first item, acquired in
    2030 (id suffixed -NEW): new imagery after any watermark. Returns the new items."""
    items = [json.loads(line) for line in items_file.read_text().splitlines()]
    new = []
    for site in sites:
        item = json.loads(json.dumps(next(i for i in items if i["properties"]["jointssl:site_id"] == site)))
        item["id"] += "-NEW"
        item["properties"]["datetime"] = "2030-01-01T10:00:00Z"
        item["properties"]["eo:cloud_cover"] = 0.0
        new.append(item)
    with items_file.open("a") as handle:
        handle.write("".join(json.dumps(i) + "\n" for i in new))
    return new
