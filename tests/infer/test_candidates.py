"""The review product: one ranked row per detection (GeoParquet + GeoJSON) that geopandas reads back,
and the warning a run gets when most of its tiles are out of distribution."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np

from jointssl.infer.candidates import GEOJSON, PARQUET, write_candidates
from jointssl.infer.decision import Decision
from jointssl.infer.report import map_title, ood_warning, summarise
from jointssl.infer.writer import (
    PartitionWriter,
    RunConstants,
    partition_urls,
    read_stats,
)
from tests.infer.test_writer import CLASSES, rows


def test_candidates_are_one_ranked_row_per_detection(tmp_path):
    run = str(tmp_path / "run")
    w = PartitionWriter(run, RunConstants("r", "m", "n", "1"), CLASSES, ["s2"], 320.0, [0.5, 0.5])
    frame = rows("x1_y1", ["a", "b", "c"], 3)
    frame["prob_cafo"] = np.float32([0.6, 0.9, 0.2])
    frame["prob_landfill"] = np.float32([0.95, 0.1, 0.3])
    frame["ood_s2"] = np.float32([0.3, 0.4, 0.5])
    w.add(frame)
    decision = Decision("f1", "model", tuple(CLASSES), (0.5, 0.5), {})
    written = write_candidates(run, partition_urls(run), decision, ["s2"], remote=False)
    assert written["detections"] == 3
    table = gpd.read_parquet(tmp_path / "run" / PARQUET)
    assert table.crs.to_epsg() == 4326 and list(table["rank"]) == [1, 2, 3]
    assert list(zip(table["tile_id"], table["class"])) == [("a", "landfill"), ("b", "cafo"), ("a", "cafo")]
    assert np.allclose(table["probability"], [0.95, 0.9, 0.6]) and set(table["operating_point"]) == {"f1"}
    assert set(table["s2_item_id"]) == {"S2A_x"} and np.allclose(table["ood_score"], [0.3, 0.4, 0.3])
    geojson = json.loads((tmp_path / "run" / GEOJSON).read_text())
    assert len(geojson["features"]) == 3 and geojson["features"][0]["properties"]["class"] == "landfill"
    assert geojson["features"][0]["properties"]["s2_datetime"].startswith("2023-01-02T00:00:00")
    assert str(table["s2_datetime"].dtype) == "datetime64[ns, UTC]"  # GeoParquet keeps the time type
    assert len(gpd.read_file(tmp_path / "run" / GEOJSON)) == 3
    assert len(gpd.read_parquet(tmp_path / "run")) == 3  # the partitions read as before: '_' files ignored


def test_a_run_mostly_out_of_distribution_is_told_why_and_what_to_do(tmp_path):
    run = str(tmp_path / "run")
    w = PartitionWriter(run, RunConstants("r", "m", "n", "1"), CLASSES, ["s2"], 320.0, 0.5)
    frame = rows("x1_y1", ["a", "b", "c"], 3)
    frame["ood_s2"] = np.float32([4.0, 2.0, 0.5])
    w.add(frame)
    summary = summarise(read_stats(run), CLASSES)
    assert summary["out_of_distribution"] == {"tiles": 2, "share": 0.6667,
                                              "sensors": {"s2": {"tiles": 2, "scored": 3, "share": 0.6667}}}
    assert summary["detections"] == {"cafo": 1, "landfill": 0}  # the two unlike the training data are not detections
    assert "out of distribution: 2 tiles (67%); by sensor s2 67%" in map_title("run-x", summary, "f1", "models:/m/1")
    warning = ood_warning(summary)
    assert warning and "s2 (67% of its tiles)" in warning and "units" in warning and "infer.modalities" in warning
    assert ood_warning({**summary, "out_of_distribution": {"tiles": 1, "share": 0.33, "sensors": {}}}) is None
