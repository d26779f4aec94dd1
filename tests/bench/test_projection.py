"""The whole-country projection's arithmetic, on hand-made stage costs; the nightly benchmark's new scenes."""

from __future__ import annotations

import json

import pytest

from jointssl.bench.nightly import add_scenes
from jointssl.bench.projection import Assumptions, project, render, stage_rows

STAGES = {
    "tiles": 100, "model": "tiny", "planning_ms": 2.0, "head_ms": 0.5, "write_ms": 0.5,
    "sensors": {
        "naip": {"read_ms": 10.0, "encode_ms": 20.0, "bytes_per_tile": 1000.0, "present": 1.0, "flops_per_chip": 1e9},
        "s2": {"read_ms": 4.0, "encode_ms": 5.0, "bytes_per_tile": 500.0, "present": 1.0, "flops_per_chip": 1e8},
    },
    "sensors_cache": {"naip": {"commit_ms": 0.1, "read_ms": 0.05, "bytes_per_tile": 10.0},
                      "s2": {"commit_ms": 0.1, "read_ms": 0.05, "bytes_per_tile": 10.0}},
    "write_bytes_per_tile": 200.0,
}
A = Assumptions(area_km2=1.0, side_m=100.0, stride_m=50.0, gpu_tflops=1.0, nodes=(1, 4), gpus_per_node=8,
                cores_per_node=96, nic_gbps=100.0, revisit_days={"s2": 5.0})


def test_a_full_pass_is_tiles_times_the_measured_costs():
    result = project(STAGES, A)
    assert result["tiles"] == pytest.approx(400.0)  # 1 km^2 / (50 m)^2
    full = result["passes"]["full pass"]
    assert full["cpu_hours"]["read naip"] == pytest.approx(400 * 10.0 / 3.6e6)
    assert full["cpu_hours_beside_gpus"] == pytest.approx(400 * (2.0 + 0.5 + 0.5 + 10.0 + 4.0) / 3.6e6)
    assert full["gpu_hours"] == pytest.approx(400 * 1.1e9 / 1e12 / 3600)
    assert full["bytes_read"] == pytest.approx(400 * 1500.0)
    one, four = full["wall"][1], full["wall"][4]
    assert one["hours"] == max(one["cpu_h"], one["gpu_h"], one["network_h"])
    assert four["hours"] == pytest.approx(one["hours"] / 4)


def test_a_nightly_pass_pays_the_new_scenes_and_the_cache_reads_of_the_rest():
    result = project(STAGES, A)
    assert result["triggered_per_night"] == pytest.approx(0.2)  # s2 every 5 nights, NAIP never
    cached = result["passes"]["nightly, embedding cache"]["cpu_hours"]
    assert "read naip" in cached and cached["read naip"] == 0.0
    assert cached["read s2"] == pytest.approx(400 * 0.2 * 4.0 / 3.6e6)
    assert cached["cache naip"] == pytest.approx(400 * 0.2 * 0.05 / 3.6e6)
    plain = result["passes"]["nightly, no cache"]
    assert plain["cpu_hours"]["read naip"] == pytest.approx(400 * 0.2 * 10.0 / 3.6e6)
    full = result["passes"]["full pass"]
    assert plain["cpu_hours_all_on_cpu"] == pytest.approx(0.2 * full["cpu_hours_all_on_cpu"])
    assert result["passes"]["nightly, embedding cache"]["gpu_hours"] < plain["gpu_hours"]
    text = render(result, STAGES) + "\n".join(stage_rows(STAGES))
    assert "Assumptions:" in text and "wall time, 4 nodes (32 GPUs, 384 cores)" in text


def test_new_scenes_copy_each_site_s_first_item_with_a_later_datetime(tmp_path):
    items = tmp_path / "stac" / "items"
    items.mkdir(parents=True)
    rows = [{"id": f"i{k}", "properties": {"jointssl:site_id": site, "datetime": "2023-01-01T00:00:00Z"}}
            for k, site in enumerate(["a", "a", "b", "c"])]
    (items / "s2.ndjson").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert add_scenes(tmp_path, ["a", "b"], ("s2",), "2031-01-01T00:00:00Z") == {"s2": 2}
    lines = [json.loads(line) for line in (items / "s2.ndjson").read_text().splitlines()]
    assert [i["id"] for i in lines[4:]] == ["i0-nightly", "i2-nightly"]
    assert {i["properties"]["datetime"] for i in lines[4:]} == {"2031-01-01T00:00:00Z"}
