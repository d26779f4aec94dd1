"""The chip cache: written in parts, committed only when whole, read back by row, keyed by index and sensors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from jointssl.data.chip_cache import (
    ChipCacheReader,
    ChipCacheWriter,
    cache_key,
    cache_location,
    commit,
    is_committed,
)
from jointssl.data.dataset import ChipBatchLoader, site_table
from tests.support.rasters import LAT, LON, s2_like


def sites_on_one_item(tmp_path, n: int = 10):
    """``n`` sites spread over one S2-like item (distinct chips), one without an item."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    modality, item = s2_like(tmp_path, np.random.default_rng(0))
    ids = [f"site-{i}" for i in range(n)]
    sites = pd.DataFrame({"site_id": ids, "lon": [LON + 0.0004 * (i - n // 2) for i in range(n)],
                          "lat": [LAT + 0.0003 * (i % 3 - 1) for i in range(n)], "split": "unlabelled",
                          "labels": [[] for _ in range(n)]})
    index = pd.DataFrame({"site_id": ids, "modality": "s2", "status": ["ok"] * (n - 1) + ["no_item"],
                          "item": [json.dumps(item)] * (n - 1) + [None]})
    return modality, site_table(index, sites, [modality])


def test_written_parts_read_back_by_row_once_committed(tmp_path):
    modality, table = sites_on_one_item(tmp_path / "cogs")
    url = cache_location(str(tmp_path / "cache"), table, [modality])
    loader, writer = ChipBatchLoader([modality]), ChipCacheWriter(url, [modality])
    order = np.array([7, 2, 9, 0, 5, 1, 8, 3, 6, 4])
    for chunk in (order[:4], order[4:8]):
        writer.write(chunk, loader(table.iloc[chunk].reset_index(drop=True)))
    assert commit(url, len(table)) == [4, 6] and not is_committed(url)  # not whole: no manifest
    with pytest.raises(FileNotFoundError, match="no committed chip cache"):
        ChipCacheReader(url, [modality])
    writer.write(order[8:], loader(table.iloc[order[8:]].reset_index(drop=True)))
    assert commit(url, len(table)) == [] and is_committed(url)

    rows = np.array([9, 3, 3, 0, 6])  # any order, repeats allowed
    cached = ChipCacheReader(url, [modality]).read(rows)
    direct = loader(table.iloc[rows].reset_index(drop=True))
    np.testing.assert_array_equal(cached["s2"], direct["s2"])  # [5 C H W], bit for bit
    assert cached["s2"].dtype == np.float32 and not np.array_equal(cached["s2"][0], cached["s2"][1])
    assert cached["site_id"].tolist() == direct["site_id"].tolist()
    assert cached["s2_present"].tolist() == [False, True, True, True, True]
    assert cached["s2_reason"].tolist() == direct["s2_reason"].tolist()


def test_key_changes_with_the_index_and_the_sensor_contract(tmp_path):
    modality, table = sites_on_one_item(tmp_path)
    key = cache_key(table, [modality])
    assert key == cache_key(table.copy(), [modality])
    other_item = table.copy()
    other_item.loc[0, "s2_item"] = other_item.loc[0, "s2_item"].replace("s2-test", "s2-other")
    fewer_bands = dataclasses.replace(modality, bands=modality.bands[:1])
    renormalised = dataclasses.replace(modality, bands=[dataclasses.replace(modality.bands[0], std=0.07),
                                                        modality.bands[1]])
    keys = {key, cache_key(other_item, [modality]), cache_key(table, [fewer_bands]),
            cache_key(table, [renormalised]), cache_key(table.iloc[::-1].reset_index(drop=True), [modality])}
    assert len(keys) == 5
    # labels and splits do not change chips: the same cache serves a relabelled site list
    relabelled = table.assign(split="train")
    assert cache_key(relabelled, [modality]) == key


def test_chips_cache_is_a_mode_and_its_location_a_separate_key():
    from jointssl.config import JobConfig
    from jointssl.config.load import ConfigError, from_dict
    from jointssl.config.schema import chip_cache_base

    config = from_dict(JobConfig, {"storage": {"root": "s3://bucket/run"}})
    assert config.chips.cache == "auto" and chip_cache_base(config) == "s3://bucket/run/chip-cache"
    config = from_dict(JobConfig, {"chips": {"cache": "never", "cache_url": "s3://bucket/chips"}})
    assert chip_cache_base(config) == "s3://bucket/chips"
    with pytest.raises(ConfigError, match=r"chips.cache.*'sometimes' is not one of: auto, always, never"):
        from_dict(JobConfig, {"chips": {"cache": "sometimes"}})
    with pytest.raises(ConfigError, match=r"location is now chips.cache_url"):
        from_dict(JobConfig, {"chips": {"cache": "s3://bucket/chips"}})
