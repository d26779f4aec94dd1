"""Planning cells on the test world: tiles only where imagery is, co-located by the index's own rules,
one search per group and modality, and incremental runs triggered only by newer imagery."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box, shape

from jointssl.data.colocate import build_index
from jointssl.infer.plan import MARKER_ID, PlanSettings, PrefetchedCatalog, plan_group
from jointssl.infer.tiles import TileGrid, cells_of, chip_boxes, coverage
from jointssl.stac.client import open_client
from jointssl.stac.embedded import stac_api
from tests.infer.conftest import US


def settings(world, since=None, cell_deg=5.0) -> PlanSettings:
    return PlanSettings(world.modalities, TileGrid.of(world.modalities, 0.5, cell_deg), (None, None), since, 0.95,
                        200, 16)


def world_items(world) -> list[dict]:
    items = []
    for path in sorted((world.root / "world" / "stac" / "items").glob("*.ndjson")):
        items += [json.loads(line) for line in path.read_text().splitlines()]
    return items


@pytest.fixture(scope="module")
def stac(infer_world):
    with stac_api(None, str(infer_world.root / "world")) as url:
        client, stats = open_client(url)
        yield client, stats


def plan(client, s: PlanSettings) -> pd.DataFrame:
    cells = cells_of(box(*US), s.grid.cell_deg)
    blocks = [b for c in cells for b in plan_group(client, s, [c], box(*US), None)]
    return pd.concat(blocks, ignore_index=True)


@pytest.fixture(scope="module")
def full_plan(infer_world, stac) -> pd.DataFrame:
    """Every cell of the US planned once (5 degree cells), tiles and markers."""
    client, _ = stac
    return plan(client, settings(infer_world))


def metres(lon, lat, lon0, lat0):
    return np.hypot((lon - lon0) * 111_320 * np.cos(np.radians(lat0)), (lat - lat0) * 111_320)


def test_tiles_exist_only_where_imagery_is_and_are_colocated(infer_world, stac, full_plan):
    client, stats = stac
    before = stats.requests
    s = settings(infer_world)
    rows = plan(client, s)
    pd.testing.assert_frame_equal(rows, full_plan)  # deterministic
    tiles, markers = rows[rows["tile_id"] != MARKER_ID], rows[rows["tile_id"] == MARKER_ID]
    cells = cells_of(box(*US), s.grid.cell_deg)
    assert set(rows["cell"]) == {c.id for c in cells} and (markers["cell_tiles"] == 0).all()
    assert not tiles["tile_id"].duplicated().any()
    assert (tiles.groupby("cell").size() == tiles.groupby("cell")["cell_tiles"].first()).all()
    sites = infer_world.sites
    for site in sites.itertuples():  # every site is seen by a tile at most ~half a stride off its centre
        assert metres(tiles["lon"], tiles["lat"], site.geometry.x, site.geometry.y).min() < 130
    nearest = [metres(sites.geometry.x, sites.geometry.y, lon, lat).min()
               for lon, lat in zip(tiles["lon"], tiles["lat"])]
    assert max(nearest) < 400  # and nowhere else: items cover one 480 m site footprint each
    reasons = tiles[[f"{m.name}_reason" for m in s.modalities]]
    assert (reasons == "ok").any(axis=1).all()  # a tile exists because some sensor covers its chip
    for m in s.modalities:
        ok = tiles[tiles[f"{m.name}_reason"] == "ok"]
        for row in ok.head(10).itertuples():
            item = json.loads(getattr(row, f"{m.name}_item"))
            chip = chip_boxes(np.array([row.lon]), np.array([row.lat]), m.chip_extent_m)
            assert coverage(chip, shape(item["geometry"]))[0] >= 0.95
    assert stats.requests - before <= 3 * len(cells) + 10  # one search per cell and modality (+ paging)


def test_prefetched_catalog_answers_colocation_like_the_api(infer_world, stac, full_plan):
    client, _ = stac
    s = settings(infer_world)
    tiles = full_plan[full_plan["tile_id"] != MARKER_ID].head(12)
    sites = pd.DataFrame({"site_id": tiles["tile_id"], "lon": tiles["lon"], "lat": tiles["lat"]})
    by_api = build_index(sites, s.modalities, client, group_cell_deg=90.0).rows
    by_collection: dict[str, list] = {}
    for item in world_items(infer_world):
        by_collection.setdefault(item["collection"], []).append(item)
    local = build_index(sites, s.modalities, PrefetchedCatalog(by_collection), group_cell_deg=90.0).rows
    pd.testing.assert_frame_equal(by_api[["site_id", "modality", "status", "item_id"]],
                                  local[["site_id", "modality", "status", "item_id"]])


def test_incremental_plans_only_tiles_under_newer_imagery(infer_world, stac, full_plan):
    client, stats = stac
    full = full_plan[full_plan["tile_id"] != MARKER_ID]
    items = world_items(infer_world)
    times = sorted(i["properties"]["datetime"] for i in items)
    since = pd.Timestamp(times[len(times) * 3 // 4]).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    newer = [i for i in items if pd.Timestamp(i["properties"]["datetime"]).strftime("%Y-%m-%dT%H:%M:%S.%fZ") > since]
    before = stats.requests
    plan(client, settings(infer_world))
    full_requests, before = stats.requests - before, stats.requests
    inc = plan(client, settings(infer_world, since=since))
    assert stats.requests - before == full_requests  # one search per group and modality: new items by their time
    markers, inc = inc[inc["tile_id"] == MARKER_ID], inc[inc["tile_id"] != MARKER_ID]
    assert 0 < len(inc) < len(full) and set(inc["tile_id"]) <= set(full["tile_id"])
    assert (inc["cell_newest"] > since).all()

    def covered_by_newer(row) -> bool:
        for m in infer_world.modalities:
            chip = chip_boxes(np.array([row.lon]), np.array([row.lat]), m.chip_extent_m)
            if any(i["collection"] == m.collection and coverage(chip, shape(i["geometry"]))[0] >= 0.95 for i in newer):
                return True
        return False

    expected = {row.tile_id for row in full.itertuples() if covered_by_newer(row)}
    assert set(inc["tile_id"]) == expected
    # triggered tiles are co-located over the whole window: older sensors' items still feed them
    assert (inc[[f"{m.name}_reason" for m in infer_world.modalities]] == "ok").all(axis=1).sum() > 0
    nothing = plan(client, settings(infer_world, since=max(
        pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for t in times)))
    assert (nothing["tile_id"] == MARKER_ID).all() and nothing["cell_newest"].eq("").all()
    assert len(markers) > 0


def test_one_search_serves_the_watermark_unless_it_is_before_the_window(infer_world):
    """An incremental run's one whole-window search also holds the new items when the watermark is inside
    the window (or the window is open); a watermark before the window's start takes a search of its own."""
    from jointssl.infer.plan import _searched_whole_window

    def s(window, since):
        return PlanSettings(infer_world.modalities, TileGrid.of(infer_world.modalities, 0.5, 5.0), window, since,
                            0.95, 200, 16)

    assert _searched_whole_window(s((None, None), "2023-06-01T10:00:00.000000Z"))
    assert _searched_whole_window(s(("2023-01-01", None), "2023-06-01T10:00:00.000000Z"))
    assert _searched_whole_window(s(("2023-01-01", None), "2023-01-01T00:00:00.000000Z"))  # the window's first instant
    assert not _searched_whole_window(s(("2023-01-01", None), "2022-12-31T23:59:59.999999Z"))
    assert _searched_whole_window(s(("2023-01-01", "2023-12-31"), None))  # a full run
