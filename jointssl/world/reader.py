"""Read a published world back: sites table, items per site, and asset pixels in physical units.

Used by the contact sheet and the learnability check; it goes through the published artefacts (STAC
NDJSON + COGs), not the renderer's memory, so both check what users will actually read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jointssl import storage

if TYPE_CHECKING:
    from geopandas import GeoDataFrame


@dataclass
class WorldReader:
    url: str

    def __post_init__(self) -> None:
        manifest = json.loads(_read(storage.join(self.url, "manifest.json")))
        self.items: dict[str, dict[str, list[dict[str, Any]]]] = {}  # collection -> site -> items
        for cid, items_url in manifest["item_files"].items():
            per_site: dict[str, list[dict[str, Any]]] = {}
            for line in _read(items_url).splitlines():
                item = json.loads(line)
                per_site.setdefault(item["properties"]["jointssl:site_id"], []).append(item)
            self.items[cid] = per_site

    def sites(self) -> GeoDataFrame:
        import geopandas as gpd

        fs, path = storage.filesystem(storage.join(self.url, "sites.parquet"))
        with fs.open(path, "rb") as fh:
            return gpd.read_parquet(fh)

    def site_items(self, collection: str, site_id: str) -> list[dict[str, Any]]:
        return self.items.get(collection, {}).get(site_id, [])

    def least_cloudy(self, collection: str, site_id: str) -> dict[str, Any]:
        items = self.site_items(collection, site_id)
        return min(items, key=lambda i: (i["properties"].get("eo:cloud_cover", 0.0), i["properties"]["datetime"]))


def read_asset(item: dict[str, Any], key: str, band: int | None = None) -> np.ndarray:
    """[B H W] float32 physical values (scale/offset from raster:bands applied, nodata -> NaN)."""
    import rasterio

    asset = item["assets"][key]
    with storage.rasterio_env(), rasterio.open(asset["href"]) as src:
        data: np.ndarray = src.read(indexes=band).astype(np.float32)  # rasterio is untyped
        if data.ndim == 2:
            data = data[None]
        nodata = src.nodata
    if nodata is not None:
        data[data == nodata] = np.nan
    bands = asset.get("raster:bands", [])
    for k, rb in enumerate(bands[: data.shape[0]]):
        data[k] = data[k] * rb.get("scale", 1.0) + rb.get("offset", 0.0)
    return data


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """[... H W] -> [... size size] around the centre."""
    h, w = image.shape[-2:]
    r0, c0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    crop: np.ndarray = image[..., r0:r0 + size, c0:c0 + size]
    return crop


def _read(url: str) -> str:
    fs, path = storage.filesystem(url)
    with fs.open(path, "rb") as fh:
        raw: bytes = fh.read()
    return raw.decode()
