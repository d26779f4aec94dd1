"""The embedded STAC API: rustac serves tiny files and pystac-client searches them like any API."""

from __future__ import annotations

import json
import urllib.request

import pytest

from jointssl.errors import JointsslError
from jointssl.platform.process import port_in_use
from jointssl.platform.rustac import serve_stac


def _collection(cid: str) -> dict:
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": cid,
        "description": f"tiny {cid} test collection",
        "license": "proprietary",
        "links": [],
        "extent": {
            "spatial": {"bbox": [[0.0, 0.0, 10.0, 10.0]]},
            "temporal": {"interval": [["2021-01-01T00:00:00Z", "2021-12-31T23:59:59Z"]]},
        },
    }


def _item(cid: str, i: int) -> dict:
    x = float(i * 3)  # items at (0,0), (3,3), (6,6): one per month
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"{cid}-{i}",
        "collection": cid,
        "geometry": {"type": "Polygon", "coordinates": [[[x, x], [x + 1, x], [x + 1, x + 1], [x, x + 1], [x, x]]]},
        "bbox": [x, x, x + 1, x + 1],
        "properties": {"datetime": f"2021-0{i + 1}-15T10:00:00Z"},
        "links": [],
        "assets": {},
    }


@pytest.fixture
def stac_files(tmp_path):
    collections, items = [], []
    for cid in ("toy-s1", "toy-s2"):
        path = tmp_path / f"{cid}.json"
        path.write_text(json.dumps(_collection(cid)))
        collections.append(path)
        lines = tmp_path / f"{cid}-items.ndjson"
        lines.write_text("".join(json.dumps(_item(cid, i)) + "\n" for i in range(3)))
        items.append(lines)
    return collections, items


def test_search_by_collection_bbox_and_datetime(stac_files):
    import pystac_client

    collections, items = stac_files
    with serve_stac(collections, items) as url:
        client = pystac_client.Client.open(url)
        assert {c.id for c in client.get_collections()} == {"toy-s1", "toy-s2"}
        found = client.search(collections=["toy-s2"], bbox=[2.5, 2.5, 7.5, 7.5], datetime="2021-02-01/2021-02-28")
        assert [item.id for item in found.items()] == ["toy-s2-1"]
        everything = client.search(collections=["toy-s1"], bbox=[0, 0, 10, 10])
        assert sorted(item.id for item in everything.items()) == ["toy-s1-0", "toy-s1-1", "toy-s1-2"]
        assert not list(client.search(bbox=[50, 50, 60, 60]).items())
    port = int(url.rsplit(":", 1)[1])
    assert not port_in_use(port), "the embedded STAC API must stop when the block ends"


def test_server_stops_when_the_block_raises(stac_files):
    collections, items = stac_files
    with pytest.raises(RuntimeError), serve_stac(collections, items) as url:
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
        raise RuntimeError("a failing job")
    assert not port_in_use(int(url.rsplit(":", 1)[1]))


def test_refuses_parquet_which_would_hang_offline(stac_files, tmp_path):
    collections, _ = stac_files
    parquet = tmp_path / "items.parquet"
    parquet.write_bytes(b"PAR1")
    with pytest.raises(JointsslError, match="ndjson"), serve_stac(collections, [parquet]):
        pass


def test_missing_file_is_named(tmp_path):
    with pytest.raises(JointsslError, match="does not exist"), serve_stac([tmp_path / "nope.json"]):
        pass
