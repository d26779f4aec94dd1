"""Partitions: written once, atomically, named by cell (never duplicated), stats readable without rows;
and the per-area watermark, which only moves forward."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from jointssl.infer.watermark import advance_watermark, read_watermark, watermark_url
from jointssl.infer.writer import PartitionWriter, RunConstants, partition_urls, read_stats, write_atomic

CLASSES = ["cafo", "landfill"]


def rows(cell: str, ids: list[str], total: int, status: str = "ok", newest: str = "2023-01-02T00:00:00.000000Z"):
    n = len(ids)
    frame = pd.DataFrame({
        "tile_id": ids, "cell": cell, "cell_tiles": total, "cell_newest": newest,
        "lon": -96.5, "lat": 33.3, "epsg": 32614, "x": 700_000.0 + 160 * np.arange(n), "y": 3_690_000.0,
        "status": status, "prob_cafo": np.float32(0.9), "prob_landfill": np.float32(0.1), "top_class": "cafo",
        "top_score": np.float32(0.9), "modalities": "s2",
        "s2_item": "S2A_x", "s2_datetime": "2023-01-02T00:00:00Z", "s2_reason": "ok",
    })
    if status != "ok":
        frame["prob_cafo"] = frame["prob_landfill"] = frame["top_score"] = np.float32(np.nan)
        frame["top_class"], frame["modalities"], frame["s2_item"], frame["s2_datetime"] = None, "", "", ""
        frame["s2_reason"] = "no_item"
    return frame


def writer(url: str) -> PartitionWriter:
    return PartitionWriter(url, RunConstants("run-x", "mlflow-1", "methane-classifier", "3"), CLASSES, ["s2"],
                           320.0, 0.5)


def test_a_partition_is_committed_once_complete_and_reads_back_as_geoparquet(tmp_path):
    w = writer(str(tmp_path / "run"))
    assert w.add(rows("x1_y1", ["a", "b"], 3)) == (2, [])
    assert w.committed() == set() and w.open_cells == 1  # incomplete: nothing on disk
    both = pd.concat([rows("x1_y1", ["c"], 3, status="no_imagery"), rows("x2_y1", ["", ], 0)])
    assert w.add(both) == (1, ["x1_y1", "x2_y1"])
    assert w.committed() == {"x1_y1", "x2_y1"} and w.open_cells == 0
    frame = gpd.read_parquet(tmp_path / "run")  # the folder is the dataset; '_empty' is ignored
    assert list(frame["tile_id"]) == ["a", "b", "c"] and frame.crs.to_epsg() == 4326
    assert frame.loc[0, "detected"].tolist() == ["cafo"] and frame.loc[2, "detected"].tolist() == []
    assert frame.loc[0, "model_version"] == "3" and frame.loc[0, "run_id"] == "mlflow-1"
    assert str(frame["s2_datetime"].dtype) == "datetime64[ns, UTC]" and pd.isna(frame.loc[2, "s2_datetime"])
    stats = {s["cell"]: s for s in read_stats(str(tmp_path / "run"))}
    assert stats["x1_y1"]["tiles"] == 3 and stats["x1_y1"]["skipped"] == {"no_imagery": 1}
    assert stats["x1_y1"]["detections"] == {"cafo": 2, "landfill": 0} and stats["x2_y1"]["tiles"] == 0
    assert len(partition_urls(str(tmp_path / "run"))) == 1
    import pyarrow.parquet as pq

    geo = json.loads(pq.read_schema(partition_urls(str(tmp_path / "run"))[0]).metadata[b"geo"])
    column = geo["columns"]["geometry"]
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Polygon"]
    np.testing.assert_allclose(column["bbox"], frame.total_bounds)  # GeoParquet's bbox is the tiles' extent


def test_duplicates_are_refused_not_written(tmp_path):
    w = writer(str(tmp_path / "run"))
    with pytest.raises(RuntimeError, match="twice"):
        w.add(rows("x1_y1", ["a", "a"], 2))
    w = writer(str(tmp_path / "run2"))
    with pytest.raises(RuntimeError, match="3 rows for 2 tiles"):
        w.add(rows("x1_y1", ["a", "b", "c"], 2))
    w.add(rows("x3_y3", ["a"], 1))
    with pytest.raises(RuntimeError, match="after its partition was written"):
        w.add(rows("x3_y3", ["a"], 1))


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import os

    def crash(*_args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_atomic(str(tmp_path / "part-a.parquet"), None, b"x" * 1000, remote=False)
    assert not (tmp_path / "part-a.parquet").exists()  # readers see nothing, not half a file
    assert all(p.name.startswith(".") for p in tmp_path.iterdir())  # only a hidden temp file


def test_a_marker_write_cut_short_is_no_commit_and_its_cell_is_written_again(tmp_path, monkeypatch):
    import os

    run = tmp_path / "run"
    w = writer(str(run))
    w.add(rows("x1_y1", ["a"], 1))
    real_replace = os.replace

    def killed(*_args):  # the process dies after the temp file is opened, before the rename
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(OSError):
        w.add(rows("x2_y1", [""], 0))
    (leftover,) = (run / "_empty").iterdir()
    leftover.write_bytes(b"")  # as a kill between open and write leaves it
    assert leftover.name.startswith(".tmp-")
    monkeypatch.setattr(os, "replace", real_replace)
    resumed = writer(str(run))
    assert resumed.committed() == {"x1_y1"}  # the cut-short marker is not a commit
    assert [s["cell"] for s in read_stats(str(run))] == ["x1_y1"]  # and the summary does not read it
    assert resumed.add(rows("x2_y1", [""], 0)) == (0, ["x2_y1"])
    assert resumed.committed() == {"x1_y1", "x2_y1"} and len(read_stats(str(run))) == 2


def test_watermark_moves_forward_only(tmp_path):
    url = watermark_url(str(tmp_path / "marks"), "area1")
    assert read_watermark(url) is None
    assert advance_watermark(url, "area1", None, "run-a", "m/1") is None
    mark = advance_watermark(url, "area1", "2023-05-01T00:00:00.000000Z", "run-a", "m/1")
    assert read_watermark(url) == mark and mark.newest.startswith("2023-05-01")
    assert advance_watermark(url, "area1", "2023-01-01T00:00:00.000000Z", "run-b", "m/1").run == "run-a"
    assert json.loads((tmp_path / "marks" / "area1.json").read_text())["run"] == "run-a"


def test_per_class_thresholds_and_out_of_distribution_tiles_decide_detections(tmp_path):
    frame = rows("x1_y1", ["a", "b", "c", "d"], 4)
    frame["prob_cafo"] = np.float32([0.9, 0.6, 0.9, 0.9])
    frame["prob_landfill"] = np.float32([0.95, 0.95, 0.1, 0.1])
    frame["ood_s2"] = np.float32([0.5, 0.2, 3.0, np.nan])  # c: unlike the training inputs; d: not scored
    w = PartitionWriter(str(tmp_path / "run"), RunConstants("r", "m", "n", "1"), CLASSES, ["s2"], 320.0,
                        [0.7, None])  # landfill: no threshold at this operating point -> never detected
    w.add(frame)
    tiles = gpd.read_parquet(tmp_path / "run")
    assert [list(d) for d in tiles["detected"]] == [["cafo"], [], [], ["cafo"]]
    assert tiles["out_of_distribution"].tolist() == [False, False, True, False]
    assert tiles["ood_score"].iloc[2] == pytest.approx(3.0) and np.isnan(tiles["ood_score"].iloc[3])
    (stats,) = read_stats(str(tmp_path / "run"))
    assert stats["ood_tiles"] == 1 and stats["ood"] == {"s2": {"scored": 3, "flagged": 1}}
    assert stats["detections"] == {"cafo": 2, "landfill": 0}
    counted = PartitionWriter(str(tmp_path / "run2"), RunConstants("r", "m", "n", "1"), CLASSES, ["s2"], 320.0,
                              [0.7, None], ood_detections=True)
    counted.add(frame)
    assert [list(d) for d in gpd.read_parquet(tmp_path / "run2")["detected"]] == [["cafo"], [], ["cafo"], ["cafo"]]
