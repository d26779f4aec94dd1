"""A small seeded chaos run in the suite (``jointssl bench chaos`` with a handful of faults): STAC faults
and actor kills at random moments over inference runs on the test world; every fault recovered, every
run's tiles exactly once. The 100-fault run is ``scripts/chaos.sh`` (docs/reliability.md)."""

from __future__ import annotations

import pytest

from jointssl.bench.chaos import KINDS, ChaosSettings, fault_schedule, render, run_chaos, write_section
from tests.conftest import require_ray

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_the_schedule_is_seeded_and_spread_over_the_duration():
    first = fault_schedule(7, 100, 60.0)
    assert first == fault_schedule(7, 100, 60.0) and first != fault_schedule(8, 100, 60.0)
    assert [f.at_s for f in first] == sorted(f.at_s for f in first) and 0 <= first[0].at_s <= first[-1].at_s <= 60
    assert {f.kind for f in first} == set(KINDS)


def test_a_few_random_faults_are_all_recovered_with_every_tile_once(infer_world, tmp_path, monkeypatch):
    require_ray()
    from jointssl.config import load_job_config

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = load_job_config("configs/test.yaml", ["--storage.root", str(infer_world.root), "--ray.num_cpus", "2"])
    result = run_chaos(config, ChaosSettings(seed=3, faults=4, duration_s=8.0, sites=4, max_seconds=240))
    s = result.summary()
    print(f"chaos: {s}")
    assert s["faults_injected"] == s["faults_scheduled"] == 4
    assert s["recovered"] == 4 and s["runs"] >= 1 and s["tiles_per_run"] > 0
    assert (s["tiles_duplicated"], s["tiles_missing"], s["tiles_extra"]) == (0, 0, 0)
    assert set(s["errors_by_type"]) <= {"JointsslError"}  # a run may stop with a clear error, then resume
    doc = tmp_path / "reliability.md"
    doc.write_text("# Reliability\n\nrows\n")
    write_section(doc, render(result, "jointssl bench chaos --faults 4", "test"))
    write_section(doc, render(result, "jointssl bench chaos --faults 4", "test"))  # replaced, not appended
    text = doc.read_text()
    assert text.startswith("# Reliability\n\nrows\n") and text.count("<!-- chaos:begin -->") == 1
    assert "| recovered / not recovered | 4 / 0 |" in text
