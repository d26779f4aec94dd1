"""A small seeded chaos run in the suite (``jointssl bench chaos`` with a handful of faults): an MLflow server
restart, a SeaweedFS (S3) restart, a predictor actor kill and a truncated STAC page at random moments over
inference runs on the test world in S3; every fault recovered, every run's tiles exactly once. The 100-fault
run with the training phase is ``scripts/chaos.sh`` (docs/reliability.md)."""

from __future__ import annotations

import pytest

from jointssl.bench.chaos import (
    INFER_KINDS,
    KINDS,
    TRAIN_KINDS,
    Applied,
    ChaosSettings,
    Fault,
    fault_schedule,
    run_chaos,
)
from jointssl.bench.chaos_report import render, summary, write_section
from jointssl.bench.chaos_train import _charge, _retrained
from tests.conftest import require_ray

pytestmark = [pytest.mark.services, pytest.mark.slow]

SEED = 0
"""Its 4-fault schedule: mlflow_restart, s3_restart, predictor_kill, stac_truncated (checked below)."""


def test_the_schedule_is_seeded_and_spread_over_the_duration():
    first = fault_schedule(7, 100, 60.0)
    assert first == fault_schedule(7, 100, 60.0) and first != fault_schedule(8, 100, 60.0)
    assert [f.at_s for f in first] == sorted(f.at_s for f in first) and 0 <= first[0].at_s <= first[-1].at_s <= 60
    assert {f.kind for f in first} == set(INFER_KINDS)
    train = fault_schedule(7, 50, 60.0, TRAIN_KINDS, first=100)
    assert {f.kind for f in train} == set(TRAIN_KINDS) and [f.number for f in train] == list(range(100, 150))
    assert set(KINDS) == set(INFER_KINDS) | set(TRAIN_KINDS)


def test_steps_trained_again_are_read_from_the_loss_history():
    # steps 1-6, a resume from the checkpoint at step 4 (5 and 6 again), then 7; a second resume from 6
    history = [(t, s) for t, s in enumerate([1, 2, 3, 4, 5, 6, 5, 6, 7, 7])]
    assert _retrained(history) == [(6, 2), (9, 1)]
    assert _retrained([(0, 1), (1, 2)]) == []


def records(pids: dict[int, int]) -> dict[str, int]:
    """step -> PID of the process that trained it, as the run's step records (two ranks)."""
    return {f"step_{step:06d}_rank_{rank}.json": pid for step, pid in pids.items() for rank in (0, 1)}


def test_steps_lost_are_the_steps_a_later_process_trained_again():
    # process 10 trained steps 1-6 (checkpoint at 4) and was killed; process 11 re-trained 5-6, went on to 9;
    # an MLflow restart at step 9 lost nothing; a node loss at step 9 (checkpoint at 8): 12 re-trained step 9
    kill = Applied(Fault(0, 1.0, "train_worker_kill"), at=1.0, trained=records({s: 10 for s in range(1, 7)}))
    restart = Applied(Fault(1, 2.0, "mlflow_restart"), at=2.0,
                      trained=records({**{s: 10 for s in range(1, 5)}, **{s: 11 for s in range(5, 10)}}))
    loss = Applied(Fault(2, 3.0, "node_loss"), at=3.0, trained=dict(restart.trained or {}))
    final = records({**{s: 10 for s in range(1, 5)}, **{s: 11 for s in range(5, 9)}, **{s: 12 for s in (9, 10)}})
    history = [(0.5, 1), (1.5, 5), (2.5, 9), (3.5, 9)]
    _charge([loss, kill, restart], history, final)  # in any order: charged in the order they were applied
    assert [kill.steps_lost, restart.steps_lost, loss.steps_lost] == [2, 0, 1]
    assert kill.recovery_s == pytest.approx(0.5) and loss.recovery_s == pytest.approx(0.5)
    unread = Applied(Fault(3, 4.0, "mlflow_restart"), at=4.0)  # its records could not be read: no count
    _charge([unread], history, final)
    assert unread.steps_lost is None


def test_a_few_random_faults_are_all_recovered_with_every_tile_once(tmp_path, monkeypatch):
    require_ray()
    from jointssl.config import load_job_config

    assert {f.kind for f in fault_schedule(SEED, 4, 8.0)} == {"mlflow_restart", "s3_restart", "predictor_kill",
                                                            "stac_truncated"}
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = load_job_config("configs/test.yaml", ["--storage.root", str(tmp_path), "--ray.num_cpus", "2"])
    result = run_chaos(config, ChaosSettings(seed=SEED, faults=4, duration_s=8.0, sites=4, max_seconds=240))
    s = summary(result)
    print(f"chaos: {s}")
    assert s["faults_injected"] == s["faults_scheduled"] == 4
    assert s["recovered"] == 4 and s["runs"] >= 1 and s["tiles_per_run"] > 0
    assert (s["tiles_duplicated"], s["tiles_missing"], s["tiles_extra"]) == (0, 0, 0)
    assert set(s["errors_by_type"]) <= {"JointsslError"}  # a run may stop with a clear error, then resume
    restarts = [a for a in result.applied if a.fault.kind.endswith("_restart")]
    assert all(a.at is not None and a.back_at is not None and a.back_at > a.at for a in restarts)
    doc = tmp_path / "reliability.md"
    doc.write_text("# Reliability\n\nrows\n")
    write_section(doc, render(result, "jointssl bench chaos --faults 4", "test"))
    write_section(doc, render(result, "jointssl bench chaos --faults 4", "test"))  # replaced, not appended
    text = doc.read_text()
    assert text.startswith("# Reliability\n\nrows\n") and text.count("<!-- chaos:begin -->") == 1
    assert "| recovered / not recovered | 4 / 0 |" in text
