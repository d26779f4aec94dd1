"""The STAC client through a fault-injecting proxy in front of a real STAC API (rustac on 127.0.0.1)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from jointssl.bench.chaos_proxy import StacFaultProxy
from jointssl.errors import JointsslError
from jointssl.platform.rustac import serve_stac
from jointssl.stac.client import open_client
from jointssl.stac.search import SearchRequest, search_items

N_ITEMS = 7


@pytest.fixture(scope="module")
def stac_url(tmp_path_factory) -> str:
    root: Path = tmp_path_factory.mktemp("stac")
    collection = {"type": "Collection", "stac_version": "1.1.0", "id": "sentinel-2-l2a", "description": "s2",
                  "license": "CC0-1.0", "links": [],
                  "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                             "temporal": {"interval": [["2020-01-01T00:00:00Z", None]]}}}
    items = [{"type": "Feature", "stac_version": "1.1.0", "id": f"s2-{i}", "collection": "sentinel-2-l2a",
              "geometry": {"type": "Polygon", "coordinates": [[[-97, 33], [-96, 33], [-96, 34], [-97, 34], [-97, 33]]]},
              "bbox": [-97, 33, -96, 34], "links": [], "assets": {},
              "properties": {"datetime": f"2023-06-0{i + 1}T00:00:00Z", "eo:cloud_cover": 10.0 * i}}
             for i in range(N_ITEMS)]
    (root / "c.json").write_text(json.dumps(collection))
    (root / "i.ndjson").write_text("".join(json.dumps(i) + "\n" for i in items))
    with serve_stac([root / "c.json"], [root / "i.ndjson"]) as url:
        yield url


REQUEST = SearchRequest("sentinel-2-l2a", (-96.6, 33.2, -96.4, 33.4), "2023-01-01T00:00:00Z/2023-12-31T00:00:00Z",
                        {"eo:cloud_cover": {"lte": 35}}, page_size=3)


def test_429_with_retry_after_then_200_is_retried_and_counted(stac_url):
    with StacFaultProxy(stac_url, [("status", 429, {"Retry-After": "1"}), ("status", 503)]) as proxy:
        started = time.monotonic()
        client, stats = open_client(proxy.url, max_retries=3, backoff_s=0.05)
        assert time.monotonic() - started >= 1.0  # Retry-After was honoured
        items = search_items(client, REQUEST)
    assert sorted(i["id"] for i in items) == ["s2-0", "s2-1", "s2-2", "s2-3"]  # paged (3 per page), filtered
    assert stats.retried == 2 and stats.by_status.get(200, 0) >= 3
    assert [r[2] for r in proxy.requests[:2]] == ["status 429", "status 503"]


def test_truncated_json_page_is_retried_by_the_search(stac_url):
    client, _ = open_client(stac_url)
    with StacFaultProxy(stac_url) as proxy:
        client, _ = open_client(proxy.url, backoff_s=0.05)
        proxy.faults = [("truncate",)]
        items = search_items(client, REQUEST, backoff_s=0.01)
    assert len(items) == 4
    assert "truncated" in [r[2] for r in proxy.requests]


def test_persistent_500_gives_up_with_a_clear_error(stac_url):
    with StacFaultProxy(stac_url) as proxy:
        client, stats = open_client(proxy.url, max_retries=2, backoff_s=0.01)
        proxy.faults = [("status", 500)] * 50
        with pytest.raises(JointsslError, match=r"STAC search of 'sentinel-2-l2a' failed .*500"):
            search_items(client, REQUEST, backoff_s=0.01, stats=stats)
    assert stats.retried <= 2 * 4  # bounded: HTTP retries per attempt x search attempts


def test_unreachable_api_names_the_url():
    with pytest.raises(JointsslError, match="cannot open the STAC API at http://127.0.0.1:9"):
        open_client("http://127.0.0.1:9", max_retries=0, timeout_s=2)
