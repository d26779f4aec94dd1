"""The co-location index, end to end through a real STAC API (rustac on 127.0.0.1) on a tiny catalog."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Point, box, mapping

from jointssl.cli import main

S2_ASSETS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL"]
ASSETS = {"sentinel-2-l2a": S2_ASSETS, "sentinel-1-rtc": ["vv", "vh"], "sentinel-1-grd": ["vv", "vh"]}
SITES = {"a": (-96.50, 33.30), "b": (-96.45, 33.32), "c": (-83.15, 37.22), "d": (-119.6, 35.3)}


def _item(collection: str, item_id: str, lon: float, lat: float, when: str, cloud: float | None,
          epsg: int | None = 32614, half_deg: float = 0.02) -> dict:
    props = {"datetime": when}
    if cloud is not None:
        props["eo:cloud_cover"] = cloud
    if epsg is not None:
        props["proj:code"] = f"EPSG:{epsg}"  # as pystac >= 1.12 writes it: no proj:epsg
    footprint = box(lon - half_deg, lat - half_deg, lon + half_deg, lat + half_deg)
    return {"type": "Feature", "stac_version": "1.1.0", "id": item_id, "collection": collection,
            "geometry": mapping(footprint), "bbox": list(footprint.bounds), "properties": props, "links": [],
            "assets": {key: {"href": f"s3://world/{item_id}/{key}.tif"} for key in ASSETS[collection]}}


def _collection(cid: str) -> dict:
    return {"type": "Collection", "stac_version": "1.1.0", "id": cid, "description": cid, "license": "CC0-1.0",
            "links": [], "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                                    "temporal": {"interval": [["2020-01-01T00:00:00Z", None]]}}}


@pytest.fixture()
def world(tmp_path: Path) -> Path:
    """A world directory as 'jointssl world' lays it out, with items chosen to exercise every rule."""
    s2 = [
        _item("sentinel-2-l2a", "s2-a-cloudy", *SITES["a"], "2023-06-01T00:00:00Z", 50.0),
        _item("sentinel-2-l2a", "s2-a-clear", *SITES["a"], "2023-07-01T00:00:00Z", 2.0),
        _item("sentinel-2-l2a", "s2-a-toocloudy", *SITES["a"], "2023-06-15T00:00:00Z", 95.0),
        _item("sentinel-2-l2a", "s2-b", *SITES["b"], "2023-06-10T00:00:00Z", 10.0),
        _item("sentinel-2-l2a", "s2-c-outside-window", *SITES["c"], "2021-06-10T00:00:00Z", 1.0),
        # d: the item covers the site point but not its whole chip
        _item("sentinel-2-l2a", "s2-d-edge", SITES["d"][0] + 0.019, SITES["d"][1], "2023-06-10T00:00:00Z", 1.0),
    ]
    s1 = [
        _item("sentinel-1-rtc", "s1-a-early", *SITES["a"], "2023-01-05T00:00:00Z", None),
        _item("sentinel-1-rtc", "s1-a-mid", *SITES["a"], "2023-07-02T00:00:00Z", None),
        _item("sentinel-1-grd", "s1-b-noproj", *SITES["b"], "2023-07-02T00:00:00Z", None, epsg=None),
    ]
    for item in s1[-1:]:
        item["collection"] = "sentinel-1-rtc"
    stac = tmp_path / "world" / "stac"
    (stac / "collections").mkdir(parents=True)
    (stac / "items").mkdir()
    for cid, items in (("sentinel-2-l2a", s2), ("sentinel-1-rtc", s1)):
        (stac / "collections" / f"{cid}.json").write_text(json.dumps(_collection(cid)))
        (stac / "items" / f"{cid}.ndjson").write_text("".join(json.dumps(i) + "\n" for i in items))
    sites = gpd.GeoDataFrame(
        {"site_id": list(SITES), "labels": [["landfill"], [], ["coal_mine"], []],
         "split": ["train", "unlabelled", "test", "val"], "labelled": [True, False, True, True]},
        geometry=[Point(*xy) for xy in SITES.values()], crs=4326,
    )
    sites.to_parquet(tmp_path / "world" / "sites.parquet")
    return tmp_path / "world"


def run_index(tmp_path: Path, world: Path, *extra: str) -> dict:
    code = main(["index", "--storage.root", str(tmp_path / "store"), "--world.out", str(world),
                 "--index.modalities", "[s2, s1]", "--index.start", "2023-01-01", "--index.end", "2023-12-31",
                 *extra])
    assert code == 0
    return json.loads((tmp_path / "store" / "index" / "summary.json").read_text())


def test_index_picks_by_policy_and_counts_what_is_missing(tmp_path, world):
    summary = run_index(tmp_path, world)
    rows = pd.read_parquet(tmp_path / "store" / "index" / "index.parquet").set_index(["site_id", "modality"])
    # s2: least cloudy within the window and under max_cloud_cover (60 in the world preset)
    assert rows.loc[("a", "s2"), "item_id"] == "s2-a-clear"
    assert rows.loc[("b", "s2"), "item_id"] == "s2-b"
    assert rows.loc[("c", "s2"), "status"] == "no_item"  # its only item is outside the window
    assert rows.loc[("d", "s2"), "status"] == "partial_cover"  # footprint holds < 95 % of the chip
    # s1: closest to the middle of the window; an item without proj:* cannot be used, and says so
    assert rows.loc[("a", "s1"), "item_id"] == "s1-a-mid"
    assert rows.loc[("b", "s1"), "status"] == "no_projection"
    # provenance: epsg from proj:code, the full item, hrefs per asset
    assert rows.loc[("a", "s2"), "epsg"] == 32614
    assert json.loads(rows.loc[("a", "s2"), "hrefs"])["B04"] == "s3://world/s2-a-clear/B04.tif"
    assert rows.loc[("a", "s2"), "radiometry"] == "preset"  # these items carry no raster:bands nor baseline
    assert json.loads(rows.loc[("a", "s2"), "item"])["id"] == "s2-a-clear"
    assert summary["missing"] == {"s2": {"no_item": 1, "partial_cover": 1}, "s1": {"no_item": 2, "no_projection": 1}}
    assert summary["complete_sites"] == 1
    assert summary["radiometry"] == {"s1": {"preset": 1}, "s2": {"preset": 2}}
    assert "s1-b-noproj" in summary["refusals"]["s1"]["no_projection"]
    # a and b share a 1-degree cell: 3 cells x 2 modalities = 6 searches, not 8
    assert summary["searches"] == 6


def test_rerun_reads_the_cache_instead_of_the_api(tmp_path, world):
    first = run_index(tmp_path, world)
    second = run_index(tmp_path, world)
    assert first["searches"] == 6 and second["searches"] == 0
    assert second["missing"] == first["missing"]


def test_coarser_cells_mean_fewer_requests(tmp_path, world):
    summary = run_index(tmp_path, world, "--index.group_cell_deg", "50", "--index.cache", "false")
    assert summary["searches"] == 4  # cells: {a, b, c} and {d}, x 2 modalities
    assert summary["missing"] == {"s2": {"no_item": 1, "partial_cover": 1}, "s1": {"no_item": 2, "no_projection": 1}}
    relaxed = run_index(tmp_path, world, "--index.min_coverage", "0.5", "--index.cache", "false")
    assert relaxed["missing"]["s2"] == {"no_item": 1}


def test_missing_world_is_a_clear_error(tmp_path, capsys):
    code = main(["index", "--storage.root", str(tmp_path)])
    assert code == 1
    assert "sites file" in capsys.readouterr().err


def test_footprints_give_each_meeting_item_its_exact_coverage_in_search_order():
    from shapely.geometry import Polygon

    from jointssl.data.colocate import Footprints

    triangle = Polygon([(0, 0), (2, 0), (0, 2)])
    items = [{"id": "far", "geometry": mapping(box(10, 10, 11, 11)), "bbox": [10, 10, 11, 11]},
             {"id": "triangle", "geometry": mapping(triangle), "bbox": [0, 0, 2, 2]},
             {"id": "bbox-only", "geometry": None, "bbox": [0.5, 0.5, 3, 3]},
             {"id": "touching", "geometry": mapping(box(-1, 0, 0, 1)), "bbox": [-1, 0, 0, 1]}]
    chip = (0.0, 0.0, 1.0, 1.0)
    got = [(item["id"], coverage) for item, coverage in Footprints(items).meeting(chip)]
    assert [name for name, _ in got] == ["triangle", "bbox-only", "touching"]  # 'far' is never intersected
    assert got[0][1] == pytest.approx(triangle.intersection(box(*chip)).area)  # the footprint, not its bbox
    assert got[1][1] == pytest.approx(0.25) and got[2][1] == 0.0
    assert Footprints([]).meeting(chip) == []
