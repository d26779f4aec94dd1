"""The area of interest, normalised once at the edge: a GeoJSON file, a bbox or a candidate site list
becomes one :class:`Area` (a lon/lat geometry, the candidate sites if any, and a stable key).

The key names the area in watermarks and run folders: the same polygon (or the same site list) gives
the same key on every run, so an incremental schedule finds its watermark again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from jointssl import storage
from jointssl.config.load import ConfigError
from jointssl.errors import JointsslError
from jointssl.infer.config import InferConfig

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class Area:
    geometry: Any
    """shapely (Multi)Polygon in EPSG:4326 (grid mode), or the MultiPoint of the candidate sites."""
    sites: pd.DataFrame | None
    """Candidate sites (site_id, lon, lat) in site mode; None in grid mode."""
    source: str
    """What the user gave, for messages: the file or the bbox."""

    @property
    def key(self) -> str:
        """Stable short id of the area (same geometry or site list -> same key)."""
        if self.sites is not None:
            text = "|".join(f"{s}:{x:.6f}:{y:.6f}" for s, x, y in
                            sorted(zip(self.sites["site_id"], self.sites["lon"], self.sites["lat"], strict=True)))
        else:
            from shapely import normalize, set_precision

            text = normalize(set_precision(self.geometry, 1e-7)).wkt
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_area(config: InferConfig) -> Area:
    """The area ``config`` describes; ConfigError when none is given, JointsslError when it is unusable."""
    if config.sites is not None:
        return _sites_area(config.sites)
    if config.area is not None:
        return Area(_read_geojson(config.area), None, config.area)
    if config.bbox is not None:
        from shapely.geometry import box

        return Area(box(*config.bbox), None, f"bbox {config.bbox}")
    raise ConfigError("infer.area", "no area of interest: give infer.area (GeoJSON), infer.bbox "
                      "[west, south, east, north] or infer.sites (a candidate site list)")


def _read_geojson(url: str) -> BaseGeometry:
    import geopandas as gpd

    fs, path = storage.filesystem(url)
    if not fs.exists(path):
        raise JointsslError(f"area file {url} does not exist",
                            hint="set infer.area to a GeoJSON file, or use infer.bbox")
    try:
        with fs.open(path, "rb") as handle:
            frame = gpd.read_file(handle)
    except Exception as err:  # GDAL/pyogrio fail in many ways on a bad file
        raise JointsslError(f"cannot read area file {url}: {type(err).__name__}: {err}",
                            hint="give a GeoJSON FeatureCollection of Polygon/MultiPolygon features") from None
    try:  # a CRS that cannot be reprojected, geometries GEOS cannot repair
        geometry = _polygons(frame)
    except Exception as err:
        raise JointsslError(f"cannot use the geometries of area file {url}: {type(err).__name__}: {err}",
                            hint="give Polygon/MultiPolygon features in EPSG:4326 or with a valid crs") from None
    if geometry is None or geometry.is_empty or not geometry.area > 0:
        kinds = sorted({g.geom_type for g in frame.geometry if g is not None}) or ["no geometries"]
        raise JointsslError(f"area file {url} holds no polygon with an area (found: {', '.join(kinds)})",
                            hint="give Polygon or MultiPolygon features; for points use infer.sites")
    west, south, east, north = geometry.bounds
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise JointsslError(f"area file {url} lies outside longitude/latitude (bounds {geometry.bounds})",
                            hint="give coordinates in EPSG:4326, or name the file's CRS in it (a 'crs' member)")
    return geometry


def _polygons(frame: Any) -> BaseGeometry | None:
    """The union of ``frame``'s polygons in EPSG:4326 (made valid), or None when it has none."""
    from shapely import make_valid, union_all

    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    polygons = [g for g in frame.geometry if g is not None and g.geom_type in ("Polygon", "MultiPolygon")]
    return union_all([make_valid(g) for g in polygons]) if polygons else None


def _sites_area(url: str) -> Area:
    from shapely.geometry import MultiPoint

    from jointssl.data.sites import read_sites

    sites = read_sites(url)[["site_id", "lon", "lat"]]
    return Area(MultiPoint(list(zip(sites["lon"], sites["lat"], strict=True))), sites, url)
