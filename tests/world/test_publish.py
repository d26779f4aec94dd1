"""The published world: COGs, STAC items and collections, sites table, determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from jointssl.world.cog import OVERVIEW_MIN_PX
from jointssl.world.multispectral import cloud_cover_from_scl
from jointssl.world.publish import load_preset_cached

from .conftest import build_world


def _items(manifest, collection):
    return [json.loads(line) for line in Path(manifest.item_files[collection]).read_text().splitlines()]


def _sites(manifest):
    import geopandas as gpd

    return gpd.read_parquet(manifest.sites_table).set_index("site_id")


def test_same_seed_same_bytes(tmp_path):
    a, b = build_world(str(tmp_path / "a"), sites=4), build_world(str(tmp_path / "b"), sites=4)

    def digest(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in {".tif", ".parquet"}}

    da, db = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert da and da == db
    for cid in a.item_files:  # items differ only by the output root in their hrefs
        ta = Path(a.item_files[cid]).read_text().replace(str(tmp_path / "a"), "ROOT")
        tb = Path(b.item_files[cid]).read_text().replace(str(tmp_path / "b"), "ROOT")
        assert ta == tb
    c = build_world(str(tmp_path / "c"), sites=4, seed=1)
    assert Path(c.item_files["sentinel-2-l2a"]).read_text() != Path(a.item_files["sentinel-2-l2a"]).read_text()


def test_cogs_read_back_with_rasterio(tiny_world):
    preset = load_preset_cached()
    sites = _sites(tiny_world)
    for cid, modality in preset.items():
        for item in _items(tiny_world, cid):
            site = sites.loc[item["properties"]["jointssl:site_id"]]
            epsg = item["properties"]["proj:epsg"]
            assert item["properties"]["proj:code"] == f"EPSG:{epsg}"
            x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(site.geometry.x, site.geometry.y)
            for key, asset in item["assets"].items():
                with open(asset["href"], "rb") as f:
                    header = f.read(8)
                assert header[:4] == b"II*\x00" and int.from_bytes(header[4:], "little") < 200, \
                    f"{key}: the first IFD does not precede the pixel data (not a COG)"
                with rasterio.open(asset["href"]) as src:
                    assert src.crs.to_epsg() == epsg == 32600 + int((site.geometry.x + 180) // 6) + 1
                    assert src.profile["tiled"], f"{key} is not tiled"
                    wide = max(src.width, src.height) > OVERVIEW_MIN_PX
                    assert bool(src.overviews(1)) == wide, f"{key}: overviews {src.overviews(1)} at {src.width} px"
                    assert src.bounds.left < x < src.bounds.right and src.bounds.bottom < y < src.bounds.top
                    assert list(src.shape) == asset["proj:shape"]
                    assert list(src.transform)[:6] == asset["proj:transform"]
                    rb = asset["raster:bands"][0]
                    assert src.dtypes[0] == rb["data_type"]
                    assert src.nodata == rb["nodata"]
                    if key in modality.band_names or key in modality.assets:
                        assert src.dtypes[0] == modality.dtype and src.nodata == modality.nodata


def test_stac_structure(tiny_world):
    import pystac

    preset = load_preset_cached()
    for cid, modality in preset.items():
        collection = json.loads(Path(tiny_world.collections[cid]).read_text())
        assert collection["id"] == cid and pystac.Collection.from_dict(collection).id == cid
        items = _items(tiny_world, cid)
        assert len({i["id"] for i in items}) == len(items)
        for d in items:
            item = pystac.Item.from_dict(d)
            assert item.collection_id == cid and item.datetime is not None
            assert set(modality.assets) <= set(d["assets"])
            for key in modality.assets:
                asset = d["assets"][key]
                assert asset["type"] == pystac.MediaType.COG and Path(asset["href"]).is_absolute()
                rb = asset["raster:bands"]
                assert all({"nodata", "data_type", "spatial_resolution"} <= set(b) for b in rb)
                if modality.scale != 1.0:
                    assert rb[0]["scale"] == modality.scale
                if any(b.center_wavelength_um for b in modality.bands):
                    assert [b["common_name"] for b in asset["eo:bands"]] == [
                        b.common_name for b in modality.bands if b.asset == key]
    s2 = _items(tiny_world, "sentinel-2-l2a")[0]
    assert s2["id"].startswith(("S2A_MSIL2A_", "S2B_MSIL2A_")) and "eo:cloud_cover" in s2["properties"]
    assert s2["assets"]["B01"]["gsd"] == 60 and s2["assets"]["B02"]["gsd"] == 10
    s1 = _items(tiny_world, "sentinel-1-rtc")[0]
    assert s1["properties"]["sat:orbit_state"] in ("ascending", "descending")
    assert s1["properties"]["sar:polarizations"] == ["VV", "VH"] and s1["id"].endswith("_rtc")
    naip = _items(tiny_world, "naip")[0]
    assert list(naip["assets"]) == ["image"] and len(naip["assets"]["image"]["eo:bands"]) == 4


def test_cloud_cover_matches_scl(tiny_world):
    covers = []
    for item in _items(tiny_world, "sentinel-2-l2a"):
        with rasterio.open(item["assets"]["SCL"]["href"]) as src:
            scl = src.read(1)
        assert item["properties"]["eo:cloud_cover"] == pytest.approx(cloud_cover_from_scl(scl), abs=1e-3)
        covers.append(item["properties"]["eo:cloud_cover"])
    assert max(covers) > 0 or len(covers) < 6


def test_stackstac_reads_s2(tiny_world):
    import stackstac

    # plain dicts: pystac.Item.from_dict migrates items and drops proj:epsg, the field stackstac reads
    items = _items(tiny_world, "sentinel-2-l2a")[:2]
    stack = stackstac.stack(items, assets=["B04", "B08", "B11"], dtype="uint16", fill_value=np.uint16(0),
                            rescale=False, resolution=10, bounds=items[0]["properties"]["proj:bbox"])
    assert stack.attrs["crs"] == f"epsg:{items[0]['properties']['proj:epsg']}"
    data = stack.isel(time=0).compute().values
    assert stack.shape[1:] == (3, 48, 48) and data.dtype == np.uint16
    assert (data > 1000).any()


def test_sites_table(tiny_world):
    sites = _sites(tiny_world)
    assert sites.crs.to_epsg() == 4326
    assert {"labels", "split", "labelled", "geometry"} <= set(sites.reset_index().columns)
    assert (sites["split"] == "unlabelled").sum() == (~sites["labelled"]).sum() > 0
    assert sites.loc[~sites["labelled"], "labels"].isna().all()
