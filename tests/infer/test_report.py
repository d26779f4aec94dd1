"""A finished run's report: the map's points come from the partitions (below threshold, detections by
top class, unclassified tiles left out) and the area's outline keeps every ring."""

from __future__ import annotations

import numpy as np
from shapely.geometry import MultiPolygon, Polygon, box

from jointssl.infer.report import detection_points, outline_rings, render_map
from jointssl.infer.writer import partition_urls
from tests.infer.test_writer import CLASSES, rows, writer


def test_the_map_points_are_the_partitions_tiles_by_what_was_found(tmp_path):
    w = writer(str(tmp_path / "run"))
    hit = rows("x1_y1", ["a", "b"], 4)
    hit["lon"] = [-96.0, -96.1]
    low = rows("x1_y1", ["c"], 4)
    low["top_score"], low["prob_cafo"], low["lon"] = np.float32(0.2), np.float32(0.2), -95.0
    landfill = rows("x2_y1", ["d"], 2)
    landfill["top_class"], landfill["lon"] = "landfill", -94.0
    landfill["prob_cafo"], landfill["prob_landfill"] = np.float32(0.1), np.float32(0.9)
    w.add(hit)
    w.add(low)
    w.add(rows("x1_y1", ["e"], 4, status="no_imagery"))
    w.add(landfill)
    w.add(rows("x2_y1", ["f"], 2, status="no_imagery"))
    urls = partition_urls(str(tmp_path / "run"))
    assert len(urls) == 2

    points = detection_points(urls, CLASSES)
    assert points.below.tolist() == [[-95.0, 33.3]]
    assert sorted(points.hits["cafo"][:, 0].tolist()) == [-96.1, -96.0]
    assert points.hits["landfill"].tolist() == [[-94.0, 33.3]] and points.ood.shape == (0, 2)
    assert detection_points([], CLASSES).below.shape == (0, 2)
    assert render_map(urls, box(-97, 33, -93, 34), CLASSES, str(tmp_path / "map.png"), "t") == str(tmp_path / "map.png")
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"


def test_the_outline_has_every_polygon_s_exterior_and_holes():
    holed = Polygon(box(0, 0, 4, 4).exterior.coords, [box(1, 1, 2, 2).exterior.coords])
    rings = outline_rings(MultiPolygon([holed, box(10, 10, 11, 11)]))
    assert len(rings) == 3 and all(r.shape[1] == 2 and (r[0] == r[-1]).all() for r in rings)
    assert outline_rings(None) == []
