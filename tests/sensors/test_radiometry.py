"""Radiometry per item: raster:bands, then the item's processing-baseline fields, then the preset; the same
surface reflectance published in either baseline era, or with Earth Search's raster:bands, gives the same chip."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from jointssl.data.chips import Chip, ChipSkip, read_chip
from jointssl.sensors import load_preset
from jointssl.sensors.radiometry import band_scaling, item_rule, version
from jointssl.sensors.spec import OffsetRule
from jointssl.stac.items import UnusableItem
from tests.support.rasters import BBOX, EPSG, LAT, LON, write_cog


def pc_s2():
    return load_preset("planetary-computer")["sentinel-2-l2a"]


def item_with(props: dict, raster_bands: list | None = None) -> dict:
    asset = {"href": "B04.tif", **({"raster:bands": raster_bands} if raster_bands is not None else {})}
    return {"id": "s2", "properties": {"datetime": "2023-01-01T00:00:00Z", "proj:epsg": EPSG, **props},
            "assets": {"B04": asset}}


@pytest.mark.parametrize(("props", "offset", "rule"), [
    ({"s2:processing_baseline": "05.10"}, -0.1, "s2:processing_baseline>=04.00"),
    ({"s2:processing_baseline": "04.00"}, -0.1, "s2:processing_baseline>=04.00"),
    ({"s2:processing_baseline": "04"}, -0.1, "s2:processing_baseline>=04.00"),
    ({"s2:processing_baseline": "03.01"}, 0.0, "s2:processing_baseline<04.00"),
    ({"s2:processing_baseline": "02.12"}, 0.0, "s2:processing_baseline<04.00"),
    ({}, -0.1, "preset"),
])
def test_baseline_decides_the_offset_as_a_version(props, offset, rule):
    s2 = pc_s2()
    b04 = s2.bands[3]
    got = band_scaling(item_with(props), s2, b04)
    assert (got.scale, got.offset, got.rule) == (1e-4, offset, rule)


def test_raster_bands_win_and_fill_in_the_raster_extension_defaults():
    s2 = pc_s2()
    b04 = s2.bands[3]
    got = band_scaling(item_with({"s2:processing_baseline": "02.12"}, [{"scale": 2e-4, "nodata": 7}]), s2, b04)
    assert (got.scale, got.offset, got.nodata, got.rule) == (2e-4, 0.0, 7.0, "raster:bands")
    nodata_only = band_scaling(item_with({"s2:processing_baseline": "02.12"}, [{"nodata": 7}]), s2, b04)
    assert nodata_only.rule == "s2:processing_baseline<04.00" and nodata_only.nodata == 7.0


def test_earth_search_v0_fields_in_order():
    s2 = load_preset("earth-search")["sentinel-2-l2a"]
    band = s2.bands[3]
    applied = {"sentinel:boa_offset_applied": True, "sentinel:processing_baseline": "04.00"}
    assert band_scaling(item_with(applied), s2, band).offset == -0.1
    not_yet = {"sentinel:boa_offset_applied": False, "sentinel:processing_baseline": "04.00"}
    got = band_scaling(item_with(not_yet), s2, band)
    assert got.offset == 0.0 and got.rule == "sentinel:boa_offset_applied=false"
    assert band_scaling(item_with({"sentinel:processing_baseline": "02.09"}), s2, band).offset == 0.0


def test_a_baseline_that_is_not_a_version_is_refused_by_name():
    with pytest.raises(UnusableItem, match="bad_radiometry.*s2:processing_baseline"):
        item_rule(item_with({"s2:processing_baseline": "new"}), pc_s2())
    assert version("04.00") == (4, 0)


def two_eras(tmp_path, rng):
    """One surface reflectance, published three ways: baseline 02.12 (DN = R * 1e4), baseline 05.10
    (DN = R * 1e4 + 1000) as Planetary Computer publishes both, and 05.10 with Earth Search's raster:bands."""
    reflectance = rng.uniform(0.01, 0.5, size=(1, 128, 128))
    old = np.round(reflectance * 1e4).astype(np.uint16)
    new = old + np.uint16(1000)
    s2 = dataclasses.replace(pc_s2(), bands=[pc_s2().bands[3]], quality=None, allowed_hrefs=[str(tmp_path)])

    def item(name, dn, props, raster_bands=None):
        asset = {"href": write_cog(tmp_path / f"{name}.tif", dn, 10, 0)}
        if raster_bands:
            asset["raster:bands"] = raster_bands
        return {"id": name, "bbox": BBOX, "assets": {"B04": asset},
                "properties": {"datetime": "2021-06-01T00:00:00Z", "proj:epsg": EPSG, **props}}

    return s2, [item("old", old, {"s2:processing_baseline": "02.12"}),
                item("new", new, {"s2:processing_baseline": "05.10"}),
                item("es", new, {}, [{"nodata": 0, "scale": 1e-4, "offset": -0.1}])]


def test_same_reflectance_in_both_eras_gives_the_same_chip(tmp_path):
    s2, items = two_eras(tmp_path, np.random.default_rng(0))
    chips = [read_chip(item, s2, LON, LAT) for item in items]
    assert all(isinstance(c, Chip) for c in chips), chips
    np.testing.assert_allclose(chips[1].pixels, chips[0].pixels, atol=1e-4)
    np.testing.assert_allclose(chips[2].pixels, chips[0].pixels, atol=1e-4)
    # a single preset offset could not serve both: with -0.1 for every item, the old era is 0.1 too dark
    flat = dataclasses.replace(s2, offset_rules=[])
    wrong = read_chip(items[0], flat, LON, LAT)
    assert isinstance(wrong, Chip)
    assert np.allclose(wrong.pixels - chips[0].pixels, -0.1 / s2.bands[0].std, atol=1e-3)


def test_bad_baseline_is_a_counted_chip_skip(tmp_path):
    s2, items = two_eras(tmp_path, np.random.default_rng(1))
    bad = copy.deepcopy(items[0])
    bad["properties"]["s2:processing_baseline"] = "unknown"
    got = read_chip(bad, s2, LON, LAT)
    assert isinstance(got, ChipSkip) and got.reason == "bad_radiometry"


def test_offset_rules_are_preset_data():
    rules = pc_s2().offset_rules
    assert rules == [OffsetRule("s2:processing_baseline", -0.1, 0.0, "04.00")]
