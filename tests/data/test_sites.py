"""Sites files: METER-ML-style labels (lat / lon, multi-label class names), and property-based tests that
every input to the readers gives a table or one clear error, never a traceback."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jointssl.data.sites import read_sites
from jointssl.errors import JointsslError


def test_meter_ml_style_csv_labels_map_to_jointssl_classes(tmp_path):
    path = tmp_path / "meter.csv"
    pd.DataFrame({"site_id": ["a", "b", "c", "d"], "lat": [40.1, 35.2, 47.0, 30.5],
                  "lon": [-90.1, -101.3, -120.0, -95.2],
                  "labels": ["CAFOs;Landfills", "R&Ts", "Negatives", None],
                  "split": ["train", "val", "test", "unlabelled"]}).to_csv(path, index=False)
    sites = read_sites(str(path))
    assert sites["labels"].tolist() == [["cafo", "landfill"], ["refinery_terminal"], [], []]
    assert sites["labelled"].tolist() == [True, True, True, False]
    assert sites.loc[0, "lon"] == pytest.approx(-90.1) and sites.loc[0, "lat"] == pytest.approx(40.1)


def test_meter_ml_style_geojson_with_label_lists(tmp_path):
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [-90.0 + i, 40.0]},
                 "properties": {"site_id": f"s{i}", "labels": labels, "split": "test"}}
                for i, labels in enumerate([["Mines", "WWTreatment"], ["ProcessingPlants"], []])]
    path = tmp_path / "meter.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    sites = read_sites(str(path))
    assert sites["labels"].tolist() == [["coal_mine", "wastewater"], ["gas_processing"], []]


def test_an_unknown_class_names_the_site_and_the_name(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"site_id": ["a", "b"], "lat": [40, 41], "lon": [-90, -91], "labels": ["CAFOs", "Oil wells"]}
                 ).to_csv(path, index=False)
    with pytest.raises(JointsslError, match="site 'b' has unknown class 'Oil wells'"):
        read_sites(str(path))


def test_an_unknown_split_is_an_error(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"site_id": ["a"], "lat": [40], "lon": [-90], "split": ["validation"]}).to_csv(path, index=False)
    with pytest.raises(JointsslError, match="site 'a' has split 'validation'"):
        read_sites(str(path))


CELLS = st.one_of(st.none(), st.integers(-1000, 1000), st.floats(allow_nan=True, allow_infinity=True),
                  st.text(max_size=12), st.sampled_from(["cafo", "CAFOs;Landfills", "negative", "x|y", ""]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(columns=st.lists(st.sampled_from(["site_id", "lon", "lat", "labels", "split", "labelled", "start", "end",
                                         "other"]), unique=True, max_size=6),
       rows=st.integers(0, 4), data=st.data())
def test_any_csv_gives_a_table_or_one_clear_error(tmp_path, columns, rows, data):
    frame = pd.DataFrame({c: [data.draw(CELLS) for _ in range(rows)] for c in columns})
    path = tmp_path / "sites.csv"
    frame.to_csv(path, index=False)
    _table_or_clear_error(str(path))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                      st.sampled_from(['{"type": "FeatureCollection", "features": []}', "{}", "[]", "null",
                                       '{"type": "FeatureCollection", "features": [{"type": "Feature", '
                                       '"geometry": null, "properties": {"site_id": "a"}}]}'])),
       suffix=st.sampled_from([".csv", ".geojson", ".parquet"]))
def test_any_bytes_give_a_table_or_one_clear_error(tmp_path, text, suffix):
    path = tmp_path / f"sites{suffix}"
    path.write_text(text, encoding="utf-8", errors="replace")
    _table_or_clear_error(str(path))


def _table_or_clear_error(url: str) -> None:
    try:
        table = read_sites(url)
    except JointsslError as err:
        assert url in str(err) or "sites" in str(err)
        return
    assert list(table.columns)[:3] == ["site_id", "lon", "lat"] and len(table) > 0
    assert table["lon"].between(-180, 180).all() and table["lat"].between(-90, 90).all()
