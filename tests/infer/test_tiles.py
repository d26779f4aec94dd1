"""The tile grid: pixel-aligned strides, global deterministic ids, every place in exactly one cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from pyproj import Geod
from shapely.geometry import box

from jointssl.infer.tiles import (
    Cell,
    TileGrid,
    cell_of,
    cells_of,
    chip_boxes,
    coverage,
    grid_tiles,
    site_tiles,
    tile_polygons,
)
from jointssl.sensors import load_preset

WORLD = list(load_preset("world").values())


def test_grid_side_and_stride_come_from_the_sensor_contract():
    grid = TileGrid.of(WORLD, overlap=0.5, cell_deg=1.0)
    assert grid.side_m == 320.0  # naip 64 px x 5 m = s2/s1 32 px x 10 m
    assert grid.stride_m == 160.0
    assert TileGrid.of(WORLD, 0.0, 1.0).stride_m == 320.0
    assert TileGrid.of(WORLD, 0.33, 1.0).stride_m % 20.0 == 0  # rounded to 2 x the coarsest GSD


def test_cells_cover_the_area_and_tiles_fall_in_exactly_one_cell():
    grid = TileGrid(320.0, 160.0, 0.05)
    area = box(-96.52, 33.28, -96.43, 33.36)  # straddles cell edges
    cells = cells_of(area, grid.cell_deg)
    assert {c.id for c in cells} >= {cell_of(-96.5, 33.3, 0.05).id, cell_of(-96.44, 33.35, 0.05).id}
    tiles = [grid_tiles(grid, c, area.intersection(box(*c.bounds))) for c in cells]
    ids = np.concatenate([t["tile_id"].to_numpy() for t in tiles])
    assert len(ids) == len(set(ids)) > 20  # no place tiled twice
    everything = grid_tiles(grid, Cell(-97, 33, 1.0), area)  # one big cell (same UTM zone): the same tiles
    assert set(ids) == set(everything["tile_id"])
    for cell, frame in zip(cells, tiles):
        assert all(cell_of(x, y, grid.cell_deg) == cell for x, y in zip(frame["lon"], frame["lat"]))


def test_tile_ids_are_global_and_centres_on_every_pixel_grid():
    grid = TileGrid(320.0, 160.0, 1.0)
    a = grid_tiles(grid, cell_of(-96.5, 33.3, 1.0), box(-96.51, 33.29, -96.49, 33.31))
    b = grid_tiles(grid, cell_of(-96.5, 33.3, 1.0), box(-96.52, 33.28, -96.48, 33.32))
    assert set(a["tile_id"]) <= set(b["tile_id"])  # same place, same id, whatever the area
    assert (a["epsg"] == 32614).all()
    assert np.allclose((a["x"] - 160.0) % 10.0, 0) and np.allclose((a["y"] - 160.0) % 10.0, 0)


def test_tile_polygons_are_the_chip_squares():
    tiles = site_tiles(pd.DataFrame({"site_id": ["a"], "lon": [-96.5], "lat": [33.3]}))
    assert tiles.loc[0, "tile_id"] == "a" and tiles.loc[0, "epsg"] == 32614
    polygon = tile_polygons(tiles["epsg"].to_numpy(), tiles["x"].to_numpy(), tiles["y"].to_numpy(), 320.0)[0]
    assert polygon.contains(shapely.Point(-96.5, 33.3))
    area_m2, perimeter_m = Geod(ellps="WGS84").geometry_area_perimeter(polygon)
    assert abs(abs(area_m2) - 320.0**2) < 0.01 * 320.0**2 and abs(perimeter_m - 4 * 320.0) < 5.0


def test_coverage_of_chip_boxes():
    boxes = chip_boxes(np.array([-96.5, -96.5]), np.array([33.3, 40.0]), 320.0)
    assert np.allclose(coverage(boxes, box(-97, 33, -96, 34)), [1.0, 0.0])
    assert np.allclose(coverage(boxes, None), 0.0)


def test_a_region_of_many_small_parts_gets_the_tiles_of_a_full_scan():
    grid = TileGrid(320.0, 160.0, 1.0)
    cell = cell_of(-96.5, 33.5, 1.0)
    rng = np.random.default_rng(3)
    centres = rng.uniform([-96.98, 33.02], [-96.02, 33.98], size=(40, 2))
    region = shapely.union_all([shapely.Point(x, y).buffer(0.004) for x, y in centres])  # 40 ~1 km discs
    tiles = grid_tiles(grid, cell, region)
    # every grid point of the cell's bounding box, tested one by one
    from jointssl.infer.tiles import _to_lonlat, _to_utm

    x0, y0, x1, y1 = _to_utm(cell.epsg).transform_bounds(*cell.bounds, densify_pts=21)
    i = np.arange(np.floor(x0 / 160.0 - 0.5), np.ceil(x1 / 160.0 - 0.5) + 1)
    j = np.arange(np.floor(y0 / 160.0 - 0.5), np.ceil(y1 / 160.0 - 0.5) + 1)
    gi, gj = (a.ravel() for a in np.meshgrid(i, j))
    lon, lat = _to_lonlat(cell.epsg).transform((gi + 0.5) * 160.0, (gj + 0.5) * 160.0)
    inside = shapely.contains_xy(region, lon, lat)
    expected = [f"{cell.epsg}_{a:.0f}_{b:.0f}" for a, b in zip(gi[inside], gj[inside])]
    assert len(expected) > 500
    assert tiles["tile_id"].tolist() == expected  # the same tiles, in the same row-major order
