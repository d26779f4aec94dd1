"""The TorchGeo comparison's plumbing (TorchGeo itself is an optional extra, absent in CI)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from jointssl.bench.peers import require_torchgeo, site_queries
from jointssl.errors import JointsslError
from tests.support.rasters import EPSG, LAT, LON, s2_like


def test_missing_torchgeo_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchgeo", None)  # import fails as if not installed
    with pytest.raises(JointsslError, match="TorchGeo, which is not installed") as info:
        require_torchgeo()
    assert "pip install 'jointssl[bench]'" in str(info.value)


def test_site_queries_group_files_by_sensor_and_zone(tmp_path):
    modality, item = s2_like(tmp_path, np.random.default_rng(0))
    table = pd.DataFrame({"site_id": ["a", "b"], "lon": [LON, LON], "lat": [LAT, LAT],
                          "s2_item": [json.dumps(item), None]})
    queries, files = site_queries(table, [modality])
    assert files == {("s2", EPSG): [item["assets"]["B04"]["href"]]}  # the first asset; TorchGeo finds the rest
    (name, epsg, bounds), = queries[0]
    assert (name, epsg) == ("s2", EPSG) and bounds[2] - bounds[0] == 320
    assert queries[1] == [None]


def test_loader_batches_run_jointssl_in_dataloader_workers(tmp_path):
    from torch.utils.data import DataLoader

    from jointssl.bench.peers import LoaderBatches
    from jointssl.data.dataset import ChipBatchLoader

    modality, item = s2_like(tmp_path, np.random.default_rng(0))
    table = pd.DataFrame({"site_id": ["a", "b", "c"], "lon": [LON] * 3, "lat": [LAT] * 3, "split": ["train"] * 3,
                          "labels": [np.zeros(6, dtype=np.float32)] * 3, "s2_item": [json.dumps(item)] * 3,
                          "s2_reason": ["ok"] * 3})
    batches = [table.iloc[:2].reset_index(drop=True), table.iloc[2:].reset_index(drop=True)]
    loader = ChipBatchLoader([modality], threads=2)
    out = list(DataLoader(LoaderBatches(loader, batches), batch_size=None, num_workers=2))
    assert [list(b["site_id"]) for b in out] == [["a", "b"], ["c"]]
    assert all(bool(np.asarray(b["s2_present"]).all()) for b in out)
    np.testing.assert_array_equal(np.asarray(out[1]["s2"][0]), loader(batches[0])["s2"][0])


def test_aws_keys_are_out_of_the_environment_only_while_timing(monkeypatch):
    import os

    from jointssl.bench.peers import _without_aws_keys

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8333")
    with _without_aws_keys():
        assert "AWS_ACCESS_KEY_ID" not in os.environ and "AWS_SECRET_ACCESS_KEY" not in os.environ
        assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:8333"
    assert os.environ["AWS_ACCESS_KEY_ID"] == "key" and os.environ["AWS_SECRET_ACCESS_KEY"] == "secret"
