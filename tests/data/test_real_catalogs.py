"""The conformance corpus: every recorded catalog item in tests/data/real-catalogs (Planetary Computer and
Earth Search, as they publish them) read with the shipped presets, without touching the network. Each file
is either usable (assets and band indexes, CRS, time, the radiometry rule) or refused at the index with a
named reason. Pixels read under each radiometry rule (one reflectance in both baseline eras and with Earth
Search's raster:bands) are in tests/sensors/test_radiometry.py."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jointssl.data.chips import chip_grid, plan_reads
from jointssl.data.colocate import Footprints, refusal
from jointssl.sensors import load_preset
from jointssl.sensors.radiometry import band_scaling, item_rule
from jointssl.stac.items import UnusableItem, item_datetime, item_epsg, item_footprint

CORPUS = Path(__file__).parent / "real-catalogs"


def recorded(name: str) -> dict:
    return json.loads((CORPUS / f"{name}.json").read_text())


def identity(href: str) -> str:
    return href


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


# file -> (preset, collection, first assets read, band indexes of the first read, EPSG, time, radiometry rule,
#          (scale, offset, nodata) of the first band)
USABLE = {
    "pc-naip-6": ("planetary-computer", "naip", ["image"], [1, 2, 3, 4], 26911, utc("2023-11-17T16:00:00"),
                  "preset", (1 / 255, 0.0, 0.0)),
    "pc-naip-15": ("planetary-computer", "naip", ["image"], [1, 2, 3, 4], 26918, utc("2014-08-26T00:00:00"),
                   "preset", (1 / 255, 0.0, 0.0)),
    "pc-sentinel-2-l2a-1": ("planetary-computer", "sentinel-2-l2a", ["B01", "B02", "B03"], [1], 32647,
                            utc("2024-04-19T09:55:49.024"), "s2:processing_baseline>=04.00", (1e-4, -0.1, 0.0)),
    "pc-sentinel-2-l2a-7": ("planetary-computer", "sentinel-2-l2a", ["B01", "B02", "B03"], [1], 32660,
                            utc("2019-01-01T00:00:01.024"), "s2:processing_baseline<04.00", (1e-4, 0.0, 0.0)),
    "pc-sentinel-1-rtc-1": ("planetary-computer", "sentinel-1-rtc", ["vv", "vh"], [1], 32633,
                            utc("2024-04-19T04:59:10.436706"), "preset", (1.0, 0.0, -32768.0)),
    "es-sentinel-2-l2a-7": ("earth-search", "sentinel-2-l2a", ["coastal", "blue", "green"], [1], 32613,
                            utc("2023-10-08T18:02:55.276"), "raster:bands", (1e-4, -0.1, 0.0)),
}
# file -> (preset, collection, reason at the index, words its message must hold)
REFUSED = {
    "pc-sentinel-1-grd-2": ("earth-search", "sentinel-1-grd", "not_terrain_corrected", "sentinel-1-rtc"),
    "es-sentinel-1-grd-1": ("earth-search", "sentinel-1-grd", "not_terrain_corrected", "sentinel-1-rtc"),
}


def test_every_recorded_item_is_tested():
    assert sorted(p.stem for p in CORPUS.glob("*.json")) == sorted(USABLE | REFUSED)


@pytest.mark.parametrize("name", sorted(USABLE))
def test_usable_item_reads_the_right_assets_grid_time_and_radiometry(name):
    preset, collection, assets, indexes, epsg, when, rule, (scale, offset, nodata) = USABLE[name]
    item, modality = recorded(name), load_preset(preset)[collection]
    assert item["collection"] == collection
    assert refusal(item, modality) is None
    reads = plan_reads(item, modality, sign=identity)
    assert [r.asset for r in reads][: len(assets)] == assets and reads[0].indexes == indexes
    assert all(r.href == item["assets"][r.asset]["href"] for r in reads)
    if modality.quality is not None:
        assert reads[-1].asset == modality.quality.asset
    assert item_epsg(item) == epsg
    grid = chip_grid(item, modality, *item_footprint(item).representative_point().coords[0])
    assert grid.epsg == epsg and grid.bounds[2] - grid.bounds[0] == modality.chip_extent_m
    assert item_datetime(item) == when
    assert item_rule(item, modality) == rule
    got = band_scaling(item, modality, modality.bands[0])
    assert got.scale == pytest.approx(scale) and got.offset == pytest.approx(offset) and got.nodata == nodata


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unusable_item_is_refused_by_name(name):
    preset, collection, reason, words = REFUSED[name]
    item, modality = recorded(name), load_preset(preset)[collection]
    assert item["collection"] == collection
    got = refusal(item, modality)
    assert got is not None and got[0] == reason
    assert item["id"] in got[1] and words in got[1]


def test_grd_is_refused_for_what_it_is_and_for_its_metadata_too():
    """Without the preset's refusal, each GRD item is still refused, for what its own metadata shows:
    Planetary Computer's has no projection; Earth Search's is on a degree grid and HH only."""
    s1 = dataclasses.replace(load_preset("earth-search")["sentinel-1-grd"], refuse=None)
    assert refusal(recorded("pc-sentinel-1-grd-2"), s1)[0] == "no_projection"
    es = recorded("es-sentinel-1-grd-1")
    assert refusal(es, s1)[0] == "geographic_grid"
    es["properties"]["proj:epsg"] = 32643  # even on a metric grid: no VV / VH asset
    reason, message = refusal(es, s1)
    assert reason == "missing_band" and "vv, vh" in message and "hh" in message


def test_proj_fields_are_read_wherever_and_however_they_sit():
    from pyproj import CRS

    item = recorded("pc-sentinel-2-l2a-1")
    epsg = item["properties"].pop("proj:epsg")
    with pytest.raises(UnusableItem, match=item["id"]):
        item_epsg(item)
    forms = [{"proj:code": f"EPSG:{epsg}"}, {"proj:wkt2": CRS.from_epsg(epsg).to_wkt()},
             {"proj:projjson": CRS.from_epsg(epsg).to_json_dict()}]
    for form in forms:
        on_item = {**item, "properties": {**item["properties"], **form}}
        on_asset = {**item, "assets": {**item["assets"], "B04": {**item["assets"]["B04"], **form}}}
        assert item_epsg(on_item) == epsg and item_epsg(on_asset) == epsg and item_epsg(on_asset, "B04") == epsg


def test_time_forms_as_catalogs_publish_them():
    rtc = recorded("pc-sentinel-1-rtc-1")
    assert " " in rtc["properties"]["start_datetime"]  # as Planetary Computer writes it
    rtc["properties"]["datetime"] = None  # STAC allows datetime null with start/end
    assert item_datetime(rtc) == utc("2024-04-19T04:59:04.220006")
    rtc["properties"]["start_datetime"] = "2024-04-19 04:59:04"  # naive: read as UTC
    assert item_datetime(rtc) == utc("2024-04-19T04:59:04")
    rtc["properties"]["start_datetime"] = "yesterday"
    with pytest.raises(UnusableItem, match="bad_datetime"):
        item_datetime(rtc)


def test_broken_footprints_are_repaired_or_skipped_by_name():
    item = recorded("pc-sentinel-2-l2a-7")
    polygon = item["geometry"]["coordinates"]
    item["geometry"] = {"type": "MultiPolygon", "coordinates": [[], polygon]}  # an empty first part, as seen on PC
    assert item_footprint(item).equals(item_footprint(recorded("pc-sentinel-2-l2a-7")))
    bowtie = {**item, "id": "bowtie", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0],
                                                                                         [0, 1], [0, 0]]]}}
    assert item_footprint(bowtie).is_valid and item_footprint(bowtie).area == pytest.approx(0.5)
    empty = {**item, "id": "empty-one", "geometry": {"type": "MultiPolygon", "coordinates": [[]]}}
    with pytest.raises(UnusableItem, match="empty-one"):
        item_footprint(empty)
    footprints = Footprints([item, empty, bowtie])
    assert footprints.bad == ["empty-one"] and [i["id"] for i in footprints.items] == [item["id"], "bowtie"]


def test_the_inference_planner_survives_a_broken_footprint():
    from jointssl.infer.plan import _union

    good = recorded("pc-sentinel-2-l2a-7")
    bad = {**good, "id": "empty-one", "geometry": {"type": "MultiPolygon", "coordinates": [[], []]}}
    assert _union([bad, good]).equals(item_footprint(good))
