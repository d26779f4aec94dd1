"""Bad input, fuzzed: an area GeoJSON file (infer.area) gives an area or one clear error (ConfigError /
JointsslError with a message) for every content, never another exception."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jointssl.config import ConfigError, load_job_config
from jointssl.errors import JointsslError
from jointssl.infer.area import load_area

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

coordinate = st.one_of(st.floats(min_value=-200, max_value=200), st.floats(allow_nan=True, allow_infinity=True),
                       st.integers(min_value=-10**6, max_value=10**6), st.none(), st.text(max_size=3))
position = st.lists(coordinate, min_size=0, max_size=3)
ring = st.one_of(st.lists(position, max_size=6),
                 st.lists(st.tuples(st.floats(-400, 400), st.floats(-100, 100)).map(list), min_size=3, max_size=6)
                 .map(lambda r: r + r[:1]))
geometry = st.one_of(
    st.none(),
    st.fixed_dictionaries({"type": st.just("Polygon"), "coordinates": st.lists(ring, max_size=2)}),
    st.fixed_dictionaries({"type": st.just("MultiPolygon"), "coordinates": st.lists(st.lists(ring, max_size=2),
                                                                                     max_size=2)}),
    st.fixed_dictionaries({"type": st.sampled_from(["Point", "LineString", "GeometryCollection", "Nonsense", ""]),
                           "coordinates": st.one_of(position, st.lists(position, max_size=3))}),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)
feature = st.one_of(st.fixed_dictionaries({"type": st.just("Feature"), "properties": st.one_of(
    st.none(), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)), "geometry": geometry}),
    st.integers(), st.text(max_size=5), geometry)
crs = st.one_of(st.none(), st.sampled_from(["EPSG:4326", "EPSG:32614", "EPSG:3857", "EPSG:999999", "nonsense", ""]).map(
    lambda name: {"type": "name", "properties": {"name": name}}))
collection = st.builds(lambda features, c, kind: {"type": kind, "features": features, **({"crs": c} if c else {})},
                       st.one_of(st.lists(feature, max_size=4), st.integers(), st.none()), crs,
                       st.sampled_from(["FeatureCollection", "Feature", "Polygon", "Nonsense"]))

corner = st.tuples(st.floats(-185, 185), st.floats(-95, 95))
box_ring = st.builds(lambda a, w, h: [[a[0], a[1]], [a[0] + w, a[1]], [a[0] + w, a[1] + h], [a[0], a[1] + h],
                                      [a[0], a[1]]], corner, st.floats(-2, 2), st.floats(-2, 2))
plausible = st.builds(lambda rings, c: {"type": "FeatureCollection", **({"crs": c} if c else {}), "features": [
    {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [r]}} for r in rings]},
    st.lists(st.one_of(box_ring, ring), min_size=1, max_size=3), crs)
"""Mostly real areas (boxes, some of no area, some beyond lon/lat), so both outcomes are exercised."""


def infer_config(path):
    return load_job_config(None, ["--infer.area", str(path)]).infer


TALLY = {"areas": 0, "errors": 0}


def expect_area_or_error(path) -> None:
    try:
        area = load_area(infer_config(path))
    except (ConfigError, JointsslError) as err:
        assert str(err).strip()
        TALLY["errors"] += 1
        return
    TALLY["areas"] += 1
    west, south, east, north = area.geometry.bounds
    assert all(math.isfinite(v) for v in (west, south, east, north))
    assert -180 <= west < east <= 180 and -90 <= south < north <= 90  # an area the tiler can cover
    assert len(area.key) == 16


@pytest.mark.faults(fault="bad input, fuzzed: area GeoJSON files (infer.area), 200 examples (hypothesis)",
                    expected="an area inside lon/lat or one clear error naming the file; never a traceback")
@FUZZ
@given(document=st.one_of(collection, plausible))
def test_any_geojson_gives_an_area_or_a_clear_error(tmp_path, record_property, document):
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps(document, allow_nan=True))
    expect_area_or_error(path)
    record_property("observed", f"{TALLY['areas']} areas and {TALLY['errors']} clear errors, no other exception")


@FUZZ
@given(raw=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_any_file_content_gives_an_area_or_a_clear_error(tmp_path, raw):
    path = tmp_path / "aoi.geojson"
    path.write_bytes(raw)
    expect_area_or_error(path)


@pytest.mark.parametrize("document", [
    {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": {
        "type": "Polygon", "coordinates": [[[0, 0], [1e9, 0], [1e9, 1e9], [0, 0]]]}}]},
    {"type": "FeatureCollection", "features": []},
    {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"a": 1}, "geometry": None}]},
])
def test_found_by_fuzzing(tmp_path, document):
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps(document))
    expect_area_or_error(path)
