"""Sites -> index rows -> chips: the batch loader on its own, and the streaming Ray Dataset on a real local Ray."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from jointssl.data.chips import chip_grid, read_chip
from jointssl.data.dataset import ChipBatchLoader, chip_dataset, site_table, skip_counts
from jointssl.labels import FACILITY_CLASSES
from tests.conftest import require_ray
from tests.support.rasters import LAT, LON, s2_like


def tiny_index(tmp_path):
    """Three sites on one small S2-like item: ok, a missing asset, and a site the index found nothing for."""
    modality, item = s2_like(tmp_path, np.random.default_rng(0))
    broken = {**item, "id": "s2-broken", "assets": {k: v for k, v in item["assets"].items() if k != "B11"}}
    sites = pd.DataFrame({"site_id": ["ok", "broken", "none"], "lon": [LON, LON, LON], "lat": [LAT, LAT, LAT],
                          "split": ["train", "unlabelled", "val"],
                          "labels": [["landfill"], [], ["cafo", "wastewater"]]})
    index = pd.DataFrame({"site_id": ["ok", "broken", "none"], "modality": "s2",
                          "status": ["ok", "ok", "no_item"],
                          "item": [json.dumps(item), json.dumps(broken), None]})
    return modality, item, sites, index


def test_site_table_and_require_policy(tmp_path):
    modality, _, sites, index = tiny_index(tmp_path)
    table = site_table(index, sites, [modality])
    assert list(table["s2_reason"]) == ["ok", "ok", "no_item"]
    assert table.loc[2, "labels"].tolist() == [1.0 if c in ("cafo", "wastewater") else 0.0 for c in FACILITY_CLASSES]
    assert list(site_table(index, sites, [modality], require=["s2"])["site_id"]) == ["ok", "broken"]


def test_batch_loader_keeps_the_batch_and_counts_reasons(tmp_path):
    modality, item, sites, index = tiny_index(tmp_path)
    batch = ChipBatchLoader([modality])(site_table(index, sites, [modality]))
    assert batch["s2"].shape == (3, 2, 32, 32) and batch["s2_valid"].shape == (3, 32, 32)
    assert batch["s2_present"].tolist() == [True, False, False]
    assert batch["s2_item"].tolist() == ["s2-test", "s2-broken", ""]
    np.testing.assert_array_equal(batch["s2"][0], read_chip(item, modality, LON, LAT).pixels)
    assert (batch["s2"][1:] == 0).all()
    assert batch["labels"].shape == (3, len(FACILITY_CLASSES))
    assert skip_counts({"s2": batch["s2_reason"]}) == {"s2": {"missing_asset": 1, "no_item": 1}}


@pytest.mark.services
def test_streaming_ray_dataset_yields_aligned_chips(tmp_path):
    require_ray()
    import ray

    modality, item, sites, index = tiny_index(tmp_path)
    table = pd.concat([site_table(index, sites, [modality])] * 4, ignore_index=True)  # 12 rows, 3 batches
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ds = chip_dataset(table, [modality], batch_size=4, concurrency=1)
        rows = list(ds.iter_batches(batch_size=None, batch_format="numpy"))
    finally:
        ray.shutdown()
    s2 = np.concatenate([b["s2"] for b in rows])
    reasons = np.concatenate([b["s2_reason"] for b in rows])
    assert s2.shape == (12, 2, 32, 32)
    assert skip_counts({"s2": reasons}) == {"s2": {"missing_asset": 4, "no_item": 4}}
    expected = read_chip(item, modality, LON, LAT).pixels
    for chip, reason in zip(s2, reasons):
        if reason == "ok":
            np.testing.assert_array_equal(chip, expected)
    assert chip_grid(item, modality, LON, LAT).size == 32
