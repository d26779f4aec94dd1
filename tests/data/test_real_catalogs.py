"""The same code on real catalogs' item JSON (written here following their published conventions):
the right assets, band indexes, grid and resampling for each read, without touching the network."""

from __future__ import annotations

import pytest

from jointssl.data.chips import ChipSkip, chip_grid, plan_reads, read_chip
from jointssl.sensors import load_preset

LON, LAT = -96.5, 33.3  # UTM zone 14N


def pc_s2_item() -> dict:
    """Planetary Computer sentinel-2-l2a: proj:epsg on the item, one COG per band named B01..B12/B8A."""
    bands = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL"]
    base = "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/14/S/QB/2023/06/15/S2B_MSIL2A"
    return {"id": "S2B_MSIL2A_20230615T170849_R112_T14SQB_20230616T011425", "bbox": [-97.1, 32.4, -95.9, 33.6],
            "properties": {"datetime": "2023-06-15T17:08:49.024000Z", "proj:epsg": 32614, "eo:cloud_cover": 0.4},
            "assets": {b: {"href": f"{base}/IMG_DATA/{b}.tif", "type": "image/tiff; application=geotiff"} for b in bands}}


def es_s2_item() -> dict:
    """Earth Search v1 sentinel-2-l2a: common-name asset keys, raster:bands with scale/offset."""
    keys = ["coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "nir09",
            "swir16", "swir22", "scl"]
    assets = {k: {"href": f"s3://sentinel-cogs/sentinel-s2-l2a-cogs/14/S/QB/2023/6/S2B_14SQB_20230615_0_L2A/{k}.tif",
                  "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]}
              for k in keys}
    return {"id": "S2B_14SQB_20230615_0_L2A", "bbox": [-97.1, 32.4, -95.9, 33.6], "assets": assets,
            "properties": {"datetime": "2023-06-15T17:08:49Z", "proj:epsg": 32614, "eo:cloud_cover": 0.4}}


def naip_item() -> dict:
    """NAIP (PC and Earth Search alike): ONE 4-band 'image' asset; UTM NAD83 (EPSG:26914)."""
    return {"id": "tx_m_3309601_ne_14_060_20220722", "bbox": [-96.6, 33.2, -96.4, 33.4],
            "properties": {"datetime": "2022-07-22T16:00:00Z", "proj:epsg": 26914, "gsd": 0.6},
            "assets": {"image": {"href": "https://naipeuwest.blob.core.windows.net/naip/v002/tx/2022/m_3309601_ne.tif"}}}


def grd_item() -> dict:
    """Earth Search sentinel-1-grd: no proj:* at all (radar geometry, not on a map grid)."""
    return {"id": "S1A_IW_GRDH_1SDV_20230615T002315", "bbox": [-98, 32, -95, 34],
            "properties": {"datetime": "2023-06-15T00:23:15Z", "sat:orbit_state": "ascending"},
            "assets": {"vv": {"href": "s3://sentinel-s1-l1c/GRD/vv.tiff"}, "vh": {"href": "s3://sentinel-s1-l1c/GRD/vh.tiff"}}}


def identity(href: str) -> str:
    return href


def test_planetary_computer_sentinel2_reads_every_band_and_scl():
    s2 = load_preset("planetary-computer")["sentinel-2-l2a"]
    reads = plan_reads(pc_s2_item(), s2, sign=identity)
    assert [r.asset for r in reads] == s2.band_names + ["SCL"]
    resampling = {r.asset: r.resampling for r in reads}
    assert resampling["B04"] == "nearest" and resampling["B11"] == "nearest" and resampling["B01"] == "nearest"
    grid = chip_grid(pc_s2_item(), s2, LON, LAT)
    assert grid.epsg == 32614 and grid.size == 32 and grid.bounds[2] - grid.bounds[0] == 320


def test_planetary_computer_hrefs_go_through_the_signer():
    s2 = load_preset("planetary-computer")["sentinel-2-l2a"]
    assert s2.href_modifier == "jointssl.sensors.signing.planetary_computer"
    reads = plan_reads(pc_s2_item(), s2, sign=lambda h: h + "?sig=x")
    assert all(r.href.endswith("?sig=x") for r in reads)


def test_earth_search_sentinel2_uses_common_name_assets():
    s2 = load_preset("earth-search")["sentinel-2-l2a"]
    reads = plan_reads(es_s2_item(), s2, sign=identity)
    assert [r.asset for r in reads][:4] == ["coastal", "blue", "green", "red"] and reads[-1].asset == "scl"
    assert reads[3].href.endswith("/red.tif")


@pytest.mark.parametrize("preset", ["planetary-computer", "earth-search"])
def test_naip_is_one_multiband_read_averaged_down(preset):
    naip = load_preset(preset)["naip"]
    reads = plan_reads(naip_item(), naip, sign=identity)
    assert len(reads) == 1 and reads[0].asset == "image" and reads[0].indexes == [1, 2, 3, 4]
    assert reads[0].resampling == "average"  # 0.6-1 m pixels averaged into 5 m chip pixels
    assert chip_grid(naip_item(), naip, LON, LAT).epsg == 26914  # NAD83 UTM, from proj:epsg


def test_sentinel1_grd_cannot_be_stacked_and_says_why():
    s1 = load_preset("earth-search")["sentinel-1-grd"]
    result = read_chip(grd_item(), s1, LON, LAT)
    assert isinstance(result, ChipSkip) and result.reason == "no_projection"
    assert "terrain correction" in result.detail
