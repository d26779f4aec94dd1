"""The tile grid: where chips are cut when an area (not a site list) is classified.

Tiles are squares of the classifier's chip footprint (the largest ``chip_size x target_gsd_m`` of its
sensors), on a grid of each UTM zone with the origin at the zone's (0, 0) and centres at
``(i + 1/2, j + 1/2) x stride``. The stride is the side times ``1 - overlap``, rounded to twice the
coarsest GSD, so every tile's chip falls on whole pixels of every sensor (the chip loader snaps to the
GSD grid; here nothing needs snapping). A tile's id, ``<epsg>_<i>_<j>``, is global and deterministic:
the same place is the same tile in every run, which is what resuming and incremental runs rely on.

Partition cells (``partition_deg`` degrees) group tiles by the cell holding their centre. A cell uses
the grid of the UTM zone of its centre, and keeps only tiles whose centre lies in it, so no place is
tiled twice; where two cells of different zones meet, the two grids do not line up (a sliver there may
be covered by one tile less than elsewhere).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

if TYPE_CHECKING:
    from pyproj import Transformer

METERS_PER_DEGREE = 111_320.0
TILE_COLUMNS = ["tile_id", "lon", "lat", "epsg", "x", "y"]


@dataclass(frozen=True)
class TileGrid:
    side_m: float
    """Tile side: the largest chip footprint among the classifier's sensors."""
    stride_m: float
    """Distance between neighbouring tile centres."""
    cell_deg: float
    """Partition cell size in degrees."""

    @classmethod
    def of(cls, modalities: Sequence[Any], overlap: float, cell_deg: float) -> TileGrid:
        """The grid for sensors ``modalities`` (their chip_extent_m / target_gsd_m)."""
        side = max(m.chip_extent_m for m in modalities)
        unit = 2.0 * max(m.target_gsd_m for m in modalities)  # centres +- side/2 stay on every pixel grid
        stride = max(unit, round(side * (1.0 - overlap) / unit) * unit)
        return cls(side, stride, cell_deg)


@dataclass(frozen=True)
class Cell:
    ix: int
    iy: int
    deg: float

    @property
    def id(self) -> str:
        return f"x{self.ix}_y{self.iy}"

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        d = self.deg
        return (self.ix * d, self.iy * d, (self.ix + 1) * d, (self.iy + 1) * d)

    @property
    def epsg(self) -> int:
        """The UTM zone whose grid tiles this cell (the zone of its centre)."""
        west, south, east, north = self.bounds
        return utm_epsg(0.5 * (west + east), 0.5 * (south + north))

    @classmethod
    def parse(cls, cell_id: str, deg: float) -> Cell:
        x, y = cell_id.split("_")
        return cls(int(x[1:]), int(y[1:]), deg)


def cell_of(lon: float, lat: float, deg: float) -> Cell:
    return Cell(math.floor(lon / deg), math.floor(lat / deg), deg)


def cells_of(geometry: Any, deg: float) -> list[Cell]:
    """Every cell whose box meets ``geometry`` (lon/lat), west to east within south to north."""
    import shapely

    west, south, east, north = geometry.bounds
    xs = np.arange(math.floor(west / deg), math.floor(east / deg) + 1)
    ys = np.arange(math.floor(south / deg), math.floor(north / deg) + 1)
    grid_x, grid_y = np.meshgrid(xs, ys)  # [Y X]
    gx, gy = grid_x.ravel(), grid_y.ravel()
    boxes = shapely.box(gx * deg, gy * deg, (gx + 1) * deg, (gy + 1) * deg)
    hit = shapely.intersects(boxes, geometry)
    return [Cell(int(x), int(y), deg) for x, y in zip(gx[hit], gy[hit], strict=True)]


def grid_tiles(grid: TileGrid, cell: Cell, region: Any) -> pd.DataFrame:
    """Tiles of ``cell`` whose centre lies in ``region`` (lon/lat geometry), in row-major order.

    Only grid points near one of the region's parts are tested: an area made of many small polygons
    (sites' surroundings, the footprints of small scenes) spread over a cell would otherwise cost a
    transform and a containment test for every point of the cell's bounding box."""
    import shapely

    if region is None or region.is_empty:
        return pd.DataFrame(columns=TILE_COLUMNS)
    epsg = cell.epsg
    gi, gj = _candidates(grid.stride_m, epsg, shapely.get_parts(region))
    s = grid.stride_m
    x, y = (gi + 0.5) * s, (gj + 0.5) * s
    lon, lat = _to_lonlat(epsg).transform(x, y)
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    keep = (shapely.contains_xy(region, lon, lat)
            & (np.floor(lon / cell.deg) == cell.ix) & (np.floor(lat / cell.deg) == cell.iy))
    return pd.DataFrame({
        "tile_id": [f"{epsg}_{a}_{b}" for a, b in zip(gi[keep], gj[keep], strict=True)],
        "lon": lon[keep], "lat": lat[keep], "epsg": epsg, "x": x[keep], "y": y[keep],
    }, columns=TILE_COLUMNS)


def _candidates(stride: float, epsg: int, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices (i, j) of the tile centres in the UTM bounds of each part (lon/lat polygons [P]),
    one grid step of margin around each, without repeats, in row-major order (j, then i)."""
    to_utm = _to_utm(epsg)
    blocks = []
    for part in parts:
        west, south, east, north = part.bounds
        x0, y0, x1, y1 = to_utm.transform_bounds(west, south, east, north, densify_pts=21)
        i = np.arange(math.floor(x0 / stride - 0.5) - 1, math.ceil(x1 / stride - 0.5) + 2)
        j = np.arange(math.floor(y0 / stride - 0.5) - 1, math.ceil(y1 / stride - 0.5) + 2)
        gi, gj = np.meshgrid(i, j)  # [J I]
        blocks.append(np.stack([gj.ravel(), gi.ravel()], axis=1))  # [J*I 2]
    if not blocks:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    jj_ii = np.unique(np.concatenate(blocks).astype(np.int64), axis=0)  # sorted by j, then i
    return jj_ii[:, 1], jj_ii[:, 0]


def site_tiles(sites: pd.DataFrame) -> pd.DataFrame:
    """One tile centred on each candidate site (tile_id = site_id), in the site's UTM zone."""
    epsg = np.array([utm_epsg(lon, lat) for lon, lat in zip(sites["lon"], sites["lat"], strict=True)], dtype=np.int64)
    x = np.zeros(len(sites))
    y = np.zeros(len(sites))
    for code in np.unique(epsg):
        rows = epsg == code
        x[rows], y[rows] = _to_utm(int(code)).transform(sites["lon"].to_numpy()[rows], sites["lat"].to_numpy()[rows])
    return pd.DataFrame({"tile_id": sites["site_id"].astype(str).to_numpy(), "lon": sites["lon"].to_numpy(),
                         "lat": sites["lat"].to_numpy(), "epsg": epsg, "x": x, "y": y}, columns=TILE_COLUMNS)


def chip_boxes(lon: np.ndarray, lat: np.ndarray, side_m: float) -> npt.NDArray[np.object_]:
    """Lon/lat boxes of chips centred on (lon, lat): shapely array [N] (the co-location index's
    approximation of a chip in degrees)."""
    import shapely

    half = side_m / 2.0
    dlat = half / METERS_PER_DEGREE
    dlon = half / (METERS_PER_DEGREE * np.maximum(np.cos(np.radians(lat)), 1e-6))
    boxes: npt.NDArray[np.object_] = shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)
    return boxes


def coverage(boxes: npt.NDArray[np.object_], footprint: Any) -> npt.NDArray[np.float64]:
    """Fraction of each box [N] inside ``footprint``."""
    import shapely

    if footprint is None or footprint.is_empty:
        return np.zeros(len(boxes))
    inside = shapely.area(shapely.intersection(boxes, footprint))
    fraction: npt.NDArray[np.float64] = inside / np.maximum(shapely.area(boxes), 1e-18)
    return fraction


def tile_polygons(epsg: np.ndarray, x: np.ndarray, y: np.ndarray, side_m: float) -> npt.NDArray[np.object_]:
    """Tile squares in EPSG:4326 (shapely array [N]) from their UTM centres."""
    import shapely

    half = side_m / 2.0
    out = np.empty(len(x), dtype=object)
    epsg = np.asarray(epsg)
    for code in np.unique(epsg):
        rows = np.flatnonzero(epsg == code)
        cx, cy = np.asarray(x)[rows], np.asarray(y)[rows]
        xs = np.stack([cx - half, cx + half, cx + half, cx - half, cx - half], axis=1)  # [N 5]
        ys = np.stack([cy - half, cy - half, cy + half, cy + half, cy - half], axis=1)  # [N 5]
        lon, lat = _to_lonlat(int(code)).transform(xs, ys)
        out[rows] = shapely.polygons(np.stack([lon, lat], axis=-1))  # [N 5 2] -> [N]
    return out


def utm_epsg(lon: float, lat: float) -> int:
    zone = min(60, math.floor((lon + 180.0) / 6.0) + 1)
    return (32600 if lat >= 0 else 32700) + zone


@lru_cache(maxsize=64)
def _to_utm(epsg: int) -> Transformer:
    from pyproj import Transformer

    return Transformer.from_crs(4326, epsg, always_xy=True)


@lru_cache(maxsize=64)
def _to_lonlat(epsg: int) -> Transformer:
    from pyproj import Transformer

    return Transformer.from_crs(epsg, 4326, always_xy=True)
