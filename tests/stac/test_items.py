"""Item facts from JSON written the way real catalogs publish it (Planetary Computer, Earth Search, pystac)."""

from __future__ import annotations

import pytest

from jointssl.stac.items import UnusableItem, asset_href, item_epsg, matches_query, raster_scaling, with_epsg

# Shapes follow the published conventions: PC sentinel-2-l2a items carry proj:epsg on the item;
# pystac >= 1.12 writes proj:code; Earth Search puts raster:bands (scale/offset) on assets; Sentinel-1
# GRD items carry no proj:* at all.
PC_S2 = {"id": "S2B_MSIL2A_20230615T170849_R112_T14SQB_20230616T011425",
         "properties": {"datetime": "2023-06-15T17:08:49Z", "proj:epsg": 32614, "eo:cloud_cover": 3.2},
         "assets": {"B04": {"href": "https://x.blob.core.windows.net/sentinel2-l2/B04.tif"}}}
PYSTAC_NEW = {"id": "a", "properties": {"datetime": "2023-01-01T00:00:00Z", "proj:code": "EPSG:32633"},
              "assets": {"vv": {"href": "s3://b/vv.tif"}}}
ASSET_LEVEL = {"id": "naip", "properties": {"datetime": "2022-07-01T00:00:00Z"},
               "assets": {"image": {"href": "s3://b/naip.tif", "proj:epsg": 26914}}}
GRD = {"id": "S1A_IW_GRDH_1SDV_20230101", "properties": {"datetime": "2023-01-01T00:00:00Z",
       "sat:orbit_state": "descending"}, "assets": {"vv": {"href": "s3://b/vv.tiff"}}}
ES_S2 = {"id": "S2A_14SQB_20230615_0_L2A", "properties": {"datetime": "2023-06-15T17:08:49Z", "proj:epsg": 32614},
         "assets": {"red": {"href": "s3://sentinel-cogs/red.tif",
                            "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]}}}


def test_epsg_from_every_convention():
    assert item_epsg(PC_S2) == 32614
    assert item_epsg(PYSTAC_NEW) == 32633
    assert item_epsg(ASSET_LEVEL) == 26914
    assert item_epsg(ASSET_LEVEL, "image") == 26914


def test_items_without_projection_cannot_be_stacked_and_say_why():
    with pytest.raises(UnusableItem) as info:
        item_epsg(GRD)
    assert info.value.reason == "no_projection" and "terrain correction" in str(info.value)


def test_with_epsg_fills_proj_epsg_for_stackstac():
    filled = with_epsg(PYSTAC_NEW)
    assert filled["properties"]["proj:epsg"] == 32633
    assert "proj:epsg" not in PYSTAC_NEW["properties"]  # input untouched


def test_assets_and_scaling():
    assert asset_href(ES_S2, "red") == "s3://sentinel-cogs/red.tif"
    assert raster_scaling(ES_S2, "red") == (0.0001, -0.1, 0)
    assert raster_scaling(PC_S2, "B04") == (None, None, None)
    with pytest.raises(UnusableItem, match="no asset 'B08' \\(it has: B04\\)"):
        asset_href(PC_S2, "B08")


def test_client_side_query():
    assert matches_query(PC_S2, {"eo:cloud_cover": {"lte": 10}})
    assert not matches_query(PC_S2, {"eo:cloud_cover": {"lt": 3}})
    assert matches_query(GRD, {"sat:orbit_state": {"eq": "descending"}})
    assert not matches_query(GRD, {"eo:cloud_cover": {"lte": 10}})  # missing property never passes
    with pytest.raises(ValueError, match="not supported"):
        matches_query(PC_S2, {"eo:cloud_cover": {"like": 1}})
