"""Tiny, seeded rasters with the real layout (UTM, tiled, compressed, overviews) and the items that point at them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from jointssl.sensors import Band, Modality, QualityMask

EPSG = 32614
LON, LAT = -96.5, 33.3
X0, Y0 = Transformer.from_crs(4326, EPSG, always_xy=True).transform(LON, LAT)
ORIGIN = ((X0 - 640) // 60 * 60, (Y0 + 640) // 60 * 60)
BBOX = list(Transformer.from_crs(EPSG, 4326, always_xy=True).transform_bounds(
    ORIGIN[0], ORIGIN[1] - 1280, ORIGIN[0] + 1280, ORIGIN[1]))


def write_cog(path: Path, data: np.ndarray, gsd: float, nodata=None) -> str:
    """A tiled, compressed GeoTIFF with overviews (what the world writes), data [C H W]."""
    count, height, width = data.shape
    profile = dict(driver="GTiff", height=height, width=width, count=count, dtype=data.dtype, crs=f"EPSG:{EPSG}",
                   transform=from_origin(ORIGIN[0], ORIGIN[1], gsd, gsd), tiled=True, blockxsize=64,
                   blockysize=64, compress="deflate", nodata=nodata)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.build_overviews([2], rasterio.enums.Resampling.average)
    return str(path)


def s2_like(tmp_path: Path, rng: np.random.Generator, scl_value: int = 4) -> tuple[Modality, dict]:
    b04 = rng.integers(1100, 4000, size=(1, 128, 128), dtype=np.uint16)  # 10 m, 1280 m square
    b11 = rng.integers(1100, 4000, size=(1, 64, 64), dtype=np.uint16)  # 20 m
    scl = np.full((1, 64, 64), scl_value, dtype=np.uint8)
    scl[0, :8, :8] = 9  # a cloud in a corner, outside the chip
    properties = {"datetime": "2023-06-01T00:00:00Z", "proj:code": f"EPSG:{EPSG}"}
    item = {"id": "s2-test", "bbox": BBOX, "properties": properties,
            "assets": {"B04": {"href": write_cog(tmp_path / "B04.tif", b04, 10, 0)},
                       "B11": {"href": write_cog(tmp_path / "B11.tif", b11, 20, 0)},
                       "SCL": {"href": write_cog(tmp_path / "SCL.tif", scl, 20, 0)}}}
    modality = Modality(name="s2", collection="sentinel-2-l2a", dtype="uint16", nodata=0, scale=1e-4, offset=-0.1,
                        target_gsd_m=10, chip_size=32,
                        bands=[Band("B04", "B04", native_gsd_m=10, mean=0.1, std=0.05),
                               Band("B11", "B11", native_gsd_m=20, mean=0.2, std=0.05)],
                        quality=QualityMask("SCL", [0, 3, 8, 9, 10]), allowed_hrefs=[str(tmp_path)])
    return modality, item
