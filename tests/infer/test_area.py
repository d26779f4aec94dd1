"""The area of interest and the infer config: loose input checked once, errors that say what to fix."""

from __future__ import annotations

import json

import pytest

from jointssl.config import ConfigError, load_job_config
from jointssl.errors import JointsslError
from jointssl.infer.area import load_area


def config(*overrides: str):
    return load_job_config(None, list(overrides)).infer


def test_bbox_area_and_stable_key():
    area = load_area(config("--infer.bbox", "[-97, 33, -96, 34]"))
    assert area.geometry.bounds == (-97, 33, -96, 34) and area.sites is None
    assert area.key == load_area(config("--infer.bbox", "[-97, 33, -96, 34]")).key
    assert area.key != load_area(config("--infer.bbox", "[-97, 33, -96, 34.5]")).key


def test_geojson_area_in_another_crs_is_reprojected(tmp_path):
    path = tmp_path / "aoi.geojson"
    ring = [[500000, 3700000], [510000, 3700000], [510000, 3710000], [500000, 3710000], [500000, 3700000]]
    crs = {"type": "name", "properties": {"name": "EPSG:32614"}}
    path.write_text(json.dumps({"type": "FeatureCollection", "crs": crs,
                                "features": [{"type": "Feature", "properties": {},
                                              "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    area = load_area(config("--infer.area", str(path)))
    west, south, east, north = area.geometry.bounds
    assert -99.1 < west < east < -98.8 and 33.4 < south < north < 33.6


def test_site_list_area(tmp_path):
    path = tmp_path / "sites.csv"
    path.write_text("site_id,lon,lat\na,-96.5,33.3\nb,-100.1,40.2\n")
    area = load_area(config("--infer.sites", str(path)))
    assert list(area.sites["site_id"]) == ["a", "b"] and area.geometry.geom_type == "MultiPoint"


def test_no_area_is_a_config_error():
    with pytest.raises(ConfigError, match="infer.area"):
        load_area(config())


def test_two_areas_and_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="infer.sites.*one of area, bbox or sites"):
        config("--infer.sites", "x.csv", "--infer.bbox", "[-97, 33, -96, 34]")
    with pytest.raises(ConfigError, match="infer.bbox"):
        config("--infer.bbox", "[-96, 33, -97, 34]")
    with pytest.raises(ConfigError, match="infer.overlap.*maximum"):
        config("--infer.overlap", "0.95")
    with pytest.raises(ConfigError, match="infer.start"):
        config("--infer.start", "last tuesday")
    with pytest.raises(ConfigError, match="infer.end.*before start"):
        config("--infer.start", "2023-05-01", "--infer.end", "2023-01-01")


def test_area_without_polygons_or_missing_file_says_so(tmp_path):
    points = tmp_path / "points.geojson"
    points.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [-96.5, 33.3]}}]}))
    with pytest.raises(JointsslError, match="no polygon") as info:
        load_area(config("--infer.area", str(points)))
    assert "infer.sites" in info.value.hint
    with pytest.raises(JointsslError, match="does not exist"):
        load_area(config("--infer.area", str(tmp_path / "nope.geojson")))
