"""A whole Ray node lost during 'jointssl infer': a cluster of two nodes (two raylets on this machine, in the
loopback-only namespace), the second node's raylet SIGKILLed by its PID while loader and predictor actors
run there. Ray Data restarts the lost actors on the node that is left and re-runs their tasks; the driver
commits each partition once, so the run finishes with every tile exactly once, as a run without the fault
(one tile per candidate site: tests/infer/test_infer_ray.py shows it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import threading
import time
from pathlib import Path

import geopandas as gpd
import pytest

from tests.support.ray_nodes import raylet_pid, two_nodes

pytestmark = [pytest.mark.services, pytest.mark.slow]

SITES = 16
"""Candidate sites of the run: enough partitions that the kill lands mid-run, few enough for CI."""


@pytest.fixture(scope="module")
def second_node():
    """The second node of a cluster of two with 2 CPUs each (the head is the driver's node)."""
    with two_nodes(cpus=2) as (_, second):
        yield second


def busy_cpus(node_id: str) -> float:
    """CPUs of ``node_id`` held by actors or tasks now."""
    import ray

    total = next(n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n["NodeID"] == node_id)
    free = ray._private.state.available_resources_per_node().get(node_id, {}).get("CPU", 0.0)  # type: ignore[attr-defined]
    return float(total) - float(free)


def run_infer(args: list[str], result: dict) -> None:
    """'jointssl infer' on the module's Ray (already initialised: the command re-uses it); fills ``result``."""
    from jointssl.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result["code"] = main(["infer", *args])
    text = buffer.getvalue()
    result["summary"] = json.loads(text[text.index("{"):]) if result["code"] == 0 else {}


def kill_node_mid_run(out: Path, node, report: dict, done: threading.Event) -> None:
    """SIGKILL the node's raylet once a partition is committed and the node's CPUs are in use."""
    deadline = time.monotonic() + 240
    while not done.is_set() and time.monotonic() < deadline:
        parts = list(out.glob("run-*/part-*.parquet"))
        if parts and busy_cpus(node.node_id) > 0:
            pid = raylet_pid(node)
            os.kill(pid, signal.SIGKILL)
            report.update(pid=pid, parts_before=len(parts), at=time.monotonic(),
                          busy=busy_cpus(node.node_id))
            return
        time.sleep(0.05)
    report["error"] = "the run ended (or timed out) before the second node was busy after a commit"


def test_a_lost_node_leaves_every_tile_predicted_exactly_once(infer_world, second_node, tmp_path):
    import ray

    second = second_node
    sites = tmp_path / "sites.parquet"
    infer_world.sites.head(SITES).to_parquet(sites)  # one tile per site, each in a partition of its own
    small = ["--infer.sites", str(sites), "--chips.batch_size", "1", "--infer.batch_size", "1"]
    out = tmp_path / "faulted"
    report: dict = {}
    result: dict = {}
    done = threading.Event()
    killer = threading.Thread(target=kill_node_mid_run, args=(out, second, report, done))
    killer.start()
    started = time.monotonic()
    try:
        run_infer(infer_world.args("--infer.out", str(out), *small), result)
    finally:
        done.set()
        killer.join()
    finished = time.monotonic()
    assert "pid" in report, report
    assert result["code"] == 0, result
    alive = {n["NodeID"]: n["Alive"] for n in ray.nodes()}
    assert alive[second.node_id] is False  # the node was lost, not just slowed down

    summary = result["summary"]
    tiles = gpd.read_parquet(summary["out"])
    duplicates = int(tiles["tile_id"].duplicated().sum())
    expected = set(infer_world.sites.head(SITES)["site_id"])  # a run without the fault: one tile per site
    gaps = len(expected - set(tiles["tile_id"]))
    extra = len(set(tiles["tile_id"]) - expected)
    print(f"node lost: raylet PID {report['pid']} SIGKILLed with {report['parts_before']} partitions committed "
          f"and {report['busy']:.2f} CPUs busy there; run finished {finished - report['at']:.1f} s later "
          f"({finished - started:.1f} s in all); duplicates {duplicates}, gaps {gaps}, extra {extra}")
    assert (duplicates, gaps, extra) == (0, 0, 0)
    assert summary["tiles"] == SITES and (tiles["status"] == "ok").all()
