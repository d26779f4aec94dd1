"""Hostile catalogs: asset hrefs outside the catalog's storage, the storage root and the world are never
opened; each is a counted skip ``href_not_allowed`` naming the item. Real recorded items (tests/data/
real-catalogs) with their hrefs rewritten in a copy, and a local world with a symlink out of it."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jointssl.config.load import ConfigError, from_dict
from jointssl.config.schema import JobConfig
from jointssl.data.chips import ChipSkip, plan_reads, read_chip, read_chips
from jointssl.data.dataset import ChipBatchLoader, site_table, skip_counts
from jointssl.data.pipeline import preset_of
from jointssl.sensors import load_preset
from jointssl.sensors.hrefs import HREF_NOT_ALLOWED, href_problem, parse_prefix
from jointssl.stac.items import UnusableItem
from tests.support.rasters import LAT, LON, s2_like

CORPUS = Path(__file__).parents[1] / "data" / "real-catalogs"
HOSTILE = {
    "file_url": "file:///etc/passwd",
    "local_path": "/etc/passwd",
    "cloud_metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "another_bucket": "s3://someone-elses-bucket/naip/image.tif",
    "another_azure_account": "https://attacker.blob.core.windows.net/naip/v002/image.tif",
    "dot_segments": "https://naipeuwest.blob.core.windows.net/naip/../other-container/secret.tif",
    "encoded_dot_segments": "https://naipeuwest.blob.core.windows.net/naip/%2e%2e/other/secret.tif",
    "user_info": "https://naipeuwest.blob.core.windows.net@169.254.169.254/naip/x.tif",
    "gdal_virtual_path": "/vsicurl/http://169.254.169.254/latest/meta-data/",
    "other_scheme": "ftp://naipeuwest.blob.core.windows.net/naip/x.tif",
}


def recorded_naip() -> dict:
    return json.loads((CORPUS / "pc-naip-6.json").read_text())


def with_href(item: dict, asset: str, href: str) -> dict:
    hostile = copy.deepcopy(item)
    hostile["assets"][asset]["href"] = href
    return hostile


def test_the_recorded_items_hrefs_are_allowed_as_published():
    item, naip = recorded_naip(), load_preset("planetary-computer")["naip"]
    assert href_problem(item["assets"]["image"]["href"], naip.allowed_hrefs) is None


@pytest.mark.faults(fault="bad input: a hostile catalog: STAC asset hrefs at a local file (file://, a bare path), "
                          "cloud metadata (169.254.169.254), another bucket or Azure account, '..', user info, "
                          "/vsicurl/, another scheme",
                    expected="a counted skip 'href_not_allowed' naming the item; the href is never signed or opened")
def test_a_hostile_href_is_a_counted_skip_and_never_signed_or_opened(record_property):
    naip = load_preset("planetary-computer")["naip"]
    signed: list[str] = []

    def sign(href: str) -> str:
        signed.append(href)
        return href

    skips = []
    for kind, href in HOSTILE.items():
        hostile = with_href(recorded_naip(), "image", href)
        with pytest.raises(UnusableItem) as raised:
            plan_reads(hostile, naip, sign=sign)
        assert raised.value.reason == HREF_NOT_ALLOWED and hostile["id"] in str(raised.value), kind
        skip = read_chips([(hostile, naip, -117.0, 34.0)])[0]
        assert isinstance(skip, ChipSkip) and skip.reason == HREF_NOT_ALLOWED and hostile["id"] in skip.detail, kind
        skips.append(skip)
    assert signed == []  # checked as the catalog gives it, before signing (the signer would call the network)
    record_property("observed", f"{len(skips)}/{len(HOSTILE)} hostile hrefs skipped as href_not_allowed, 0 signed, "
                                f"0 opened; e.g. {skips[2].detail[:110]}")
    record_property("data_lost", "none (each item is a counted skip)")


def test_a_symlink_or_dot_dot_out_of_an_allowed_root_is_refused(tmp_path):
    root, outside = tmp_path / "world", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.tif").write_bytes(b"not yours")
    (root / "inside.tif").write_bytes(b"yours")
    os.symlink(outside, root / "link")
    allowed = [str(root)]
    assert href_problem(str(root / "inside.tif"), allowed) is None
    assert href_problem(f"file://{root / 'inside.tif'}", allowed) is None
    assert href_problem(str(root / "link" / "secret.tif"), allowed) is not None
    assert href_problem(f"{root}/../outside/secret.tif", allowed) is not None
    assert href_problem(f"{root}-evil/x.tif", allowed) is not None  # a prefix of the name is not a parent


def test_host_patterns_match_one_label_and_paths_whole_segments():
    allowed = ["https://*.blob.core.windows.net/naip", "s3://sentinel-cogs/sentinel-s2-l2a-cogs"]
    assert href_problem("https://naipeuwest.blob.core.windows.net/naip/v002/x.tif", allowed) is None
    assert href_problem("https://a.b.blob.core.windows.net/naip/x.tif", allowed) is not None
    assert href_problem("https://naipeuwest.blob.core.windows.net/naip-other/x.tif", allowed) is not None
    assert href_problem("s3://sentinel-cogs/sentinel-s2-l2a-cogs/13/S/x.tif", allowed) is None
    assert href_problem("s3://sentinel-cogs/other/x.tif", allowed) is not None
    assert href_problem("S3://SENTINEL-COGS/sentinel-s2-l2a-cogs/x.tif", allowed) is None  # schemes, hosts: any case


def test_the_job_allows_its_storage_root_and_world_and_reads_chips_there(tmp_path):
    (tmp_path / "world").mkdir()
    modality, item = s2_like(tmp_path / "world", np.random.default_rng(0))
    config = from_dict(JobConfig, {"storage": {"root": str(tmp_path)}, "index": {"preset": "world"}})
    world = preset_of(config)["sentinel-2-l2a"]
    assert str(tmp_path) in world.allowed_hrefs and str(tmp_path / "world") in world.allowed_hrefs
    stranger = from_dict(JobConfig, {"storage": {"root": str(tmp_path / "elsewhere")}})
    allowed_elsewhere = preset_of(stranger)["sentinel-2-l2a"].allowed_hrefs
    reading = dataclasses.replace(modality, allowed_hrefs=world.allowed_hrefs)
    assert not isinstance(read_chip(item, reading, LON, LAT), ChipSkip)
    refused = dataclasses.replace(modality, allowed_hrefs=allowed_elsewhere)
    for reader in ("rasterio", "stackstac"):
        skip = read_chip(item, refused, LON, LAT, reader=reader)
        assert isinstance(skip, ChipSkip) and skip.reason == HREF_NOT_ALLOWED, reader


def test_index_allowed_hrefs_replaces_the_presets_list_and_is_validated_at_the_edge(tmp_path):
    mirror = "https://mirror.example.org/naip"
    config = from_dict(JobConfig, {"storage": {"root": str(tmp_path)},
                                   "index": {"preset": "planetary-computer", "allowed_hrefs": [mirror]}})
    naip = preset_of(config)["naip"]
    assert naip.allowed_hrefs[0] == mirror and "https://naipeuwest.blob.core.windows.net/naip" not in naip.allowed_hrefs
    for bad in ("ftp//no-scheme", "relative/path", "https://user:pw@host/x", "https://host/a/../b", "", "/vsis3/b"):
        with pytest.raises(ConfigError) as raised:
            from_dict(JobConfig, {"index": {"allowed_hrefs": [bad]}}, source="job.yaml")
        assert "index.allowed_hrefs" in str(raised.value), bad
    with pytest.raises(ValueError):
        parse_prefix("https://host/x?sig=1")


def test_a_batch_with_a_hostile_item_counts_it_and_keeps_the_others(tmp_path):
    modality, item = s2_like(tmp_path, np.random.default_rng(0))
    hostile = with_href(item, "B04", HOSTILE["cloud_metadata"])
    hostile["id"] = "s2-hostile"
    sites = pd.DataFrame({"site_id": ["ok", "hostile"], "lon": [LON, LON], "lat": [LAT, LAT],
                          "split": ["train", "train"], "labels": [[], []]})
    index = pd.DataFrame({"site_id": ["ok", "hostile"], "modality": "s2", "status": "ok",
                          "item": [json.dumps(item), json.dumps(hostile)]})
    batch = ChipBatchLoader([modality])(site_table(index, sites, [modality]))
    assert list(batch["s2_reason"]) == ["ok", HREF_NOT_ALLOWED]
    assert list(batch["s2_item"]) == ["s2-test", "s2-hostile"]
    assert skip_counts({"s2": batch["s2_reason"]}) == {"s2": {HREF_NOT_ALLOWED: 1}}
