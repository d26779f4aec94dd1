"""The inference planner refuses what the index refuses: a recorded Earth Search GRD item plans no tile and
never becomes a tile's item, while a recorded Planetary Computer RTC item over the same kind of area does."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from shapely.geometry import box

from jointssl.infer.plan import MARKER_ID, PlanSettings, PrefetchedCatalog, plan_group
from jointssl.infer.tiles import TileGrid, cells_of
from jointssl.sensors import load_preset

RECORDED = Path(__file__).resolve().parents[1] / "data" / "real-catalogs"


def _plan(preset: str, collection: str, recorded: str) -> pd.DataFrame:
    item = json.loads((RECORDED / recorded).read_text())
    modality = load_preset(preset, href_modifier="none")[collection]
    west, south, east, north = item["bbox"]
    lon, lat = 0.5 * (west + east), 0.5 * (south + north)
    area = box(lon - 0.005, lat - 0.005, lon + 0.005, lat + 0.005)  # well inside the footprint
    s = PlanSettings([modality], TileGrid.of([modality], 0.5, 1.0), (None, None), None, 0.95, 200, 16)
    catalog = PrefetchedCatalog({collection: [item]})  # the pystac-client surface, answered from the recording
    blocks = [b for c in cells_of(area, 1.0) for b in plan_group(catalog, s, [c], area, None)]
    return pd.concat(blocks, ignore_index=True)


def test_a_grd_item_plans_no_tile():
    tiles = _plan("earth-search", "sentinel-1-grd", "es-sentinel-1-grd-1.json")
    assert (tiles["tile_id"] == MARKER_ID).all(), tiles
    assert tiles["s1_item"].isna().all()


def test_an_rtc_item_over_its_area_plans_tiles_and_serves_them():
    tiles = _plan("planetary-computer", "sentinel-1-rtc", "pc-sentinel-1-rtc-1.json")
    planned = tiles[tiles["tile_id"] != MARKER_ID]
    assert len(planned) > 0 and (planned["s1_reason"] == "ok").all(), tiles[["tile_id", "s1_reason"]]
