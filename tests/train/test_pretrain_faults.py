"""A Ray Train worker killed mid-epoch (SIGKILL of its process) on the platform's Ray head: the run
restarts its workers from the last checkpoint (FailureConfig), keeps its MLflow run and finishes with
the right step count; the steps trained twice are those between the last checkpoint and the kill.

The driver is ``jointssl pretrain`` in a child process, as a user runs it against the platform
(``eval "$(jointssl platform env)"``): a process that has joined a token-authenticated cluster keeps
that auth mode, which would break later tests that start a local Ray in the pytest process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import require_ray
from tests.train.test_pretrain_ray import TINY

pytestmark = [pytest.mark.slow, pytest.mark.services]

CHECKPOINT_EVERY = 4
STEPS_PER_EPOCH = (26 // 2) // 2  # 26 unlabelled + train sites in the test world, 2 workers x batch 2


def committed_step(run_folder: Path) -> int | None:
    """Step of the latest checkpoint Ray Train has committed (written to storage is not enough)."""
    try:
        snapshot = json.loads((run_folder / "checkpoint_manager_snapshot.json").read_text())
        name = snapshot["latest_checkpoint_result"]["checkpoint_dir_name"]
        return json.loads((run_folder / name / "meta.json").read_text())["step"]
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return None


def next_checkpoint(step: int) -> int:
    """The step of the first checkpoint after ``step``: every CHECKPOINT_EVERY steps and at epoch ends."""
    return min((step // CHECKPOINT_EVERY + 1) * CHECKPOINT_EVERY, (step // STEPS_PER_EPOCH + 1) * STEPS_PER_EPOCH)


def recorded(run_folder: Path, step: int) -> int | None:
    """PID of rank 1 once it has trained ``step`` (its ``pretrain.record_sites`` record), else None."""
    epoch = (step - 1) // STEPS_PER_EPOCH + 1
    try:
        record = run_folder / "trained_sites" / f"epoch_{epoch:03d}" / f"step_{step:06d}_rank_1.json"
        return int(json.loads(record.read_text())["pid"])
    except (FileNotFoundError, KeyError, ValueError):
        return None


def kill_a_worker_mid_epoch(run_folder: Path, report: dict, stop: threading.Event) -> None:
    """SIGKILL rank 1's process mid-epoch, after a committed checkpoint and before the next one is reported
    (so the steps lost are those trained since that checkpoint), as soon as it has recorded such a step."""
    deadline = time.monotonic() + 300
    while not stop.is_set() and time.monotonic() < deadline:
        time.sleep(0.02)
        checkpoint = committed_step(run_folder)
        if checkpoint is None:
            continue
        for step in range(checkpoint + 1, next_checkpoint(checkpoint)):
            pid = recorded(run_folder, step) if step % STEPS_PER_EPOCH else None
            if pid is not None and recorded(run_folder, step + 1) is None:
                os.kill(pid, signal.SIGKILL)
                report.update(pid=pid, checkpoint_step=checkpoint, kill_step=step)
                return
    report["error"] = "found no moment to kill a worker between a committed checkpoint and the next one"


def test_killed_worker_resumes_from_the_last_checkpoint(platform, test_world, tmp_path):
    require_ray()
    import mlflow

    # the platform's environment (Ray token auth), tracking in sqlite under tmp_path
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_", "MLFLOW_", "JOINTSSL_"))}
    env.update({k: v for k, v in platform.env().items() if not k.startswith(("MLFLOW_", "JOINTSSL_STAC"))})
    # the controller polls workers (and commits their checkpoints) every 2 s by default; Ray Train
    # propagates this setting from the driver to its controller and workers
    env["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.2"
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    argv = [sys.executable, "-m", "jointssl", "pretrain", "--config", "configs/test.yaml", "--storage.root",
            str(tmp_path), *test_world.args(), *TINY, "--ray.address", env["JOINTSSL_RAY_GCS_ADDRESS"],
            "--run.name", "faults", "--pretrain.epochs", "2", "--pretrain.batch_size", "2",
            "--pretrain.checkpoint_every", str(CHECKPOINT_EVERY), "--pretrain.max_failures", "1",
            "--pretrain.record_sites", "true"]

    report: dict = {}
    stop = threading.Event()
    killer = threading.Thread(target=kill_a_worker_mid_epoch, args=(tmp_path / "checkpoints" / "faults", report, stop))
    killer.start()
    try:
        done = subprocess.run(argv, env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                              timeout=400)
    finally:
        stop.set()
        killer.join()
    out = done.stdout
    sys.__stdout__.write(out)
    assert done.returncode == 0, (out + done.stderr)[-4000:]
    assert "pid" in report, report
    summary = json.loads(out[out.index("{\n"):])
    assert summary["steps"] == 2 * STEPS_PER_EPOCH and summary["epochs"] == 2
    assert f"[pretrain] resuming from checkpoint at step {report['checkpoint_step']}" in out
    # the interrupted first epoch still completes the chip cache: the second epoch streams it
    assert "[pretrain] epoch 2/2 reads chips from the chip cache" in out

    client = mlflow.MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name("jointssl").experiment_id])
    assert [r.info.run_id for r in runs] == [summary["mlflow_run_id"]]  # one run, continued after the kill
    assert runs[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(summary["mlflow_run_id"], "loss")]
    assert sorted(set(steps)) == list(range(1, summary["steps"] + 1))  # every step trained
    twice = sorted(s for s in set(steps) if steps.count(s) > 1)  # logged twice = trained twice
    lost = len(steps) - len(set(steps))
    sys.__stdout__.write(f"\nkilled worker PID {report['pid']} at step {report['kill_step']}, last checkpoint at step "
                         f"{report['checkpoint_step']}: steps trained twice {twice} ({lost} lost; "
                         f"checkpoint_every {CHECKPOINT_EVERY})\n")
    # resumed from that checkpoint: exactly the steps after it (the killed rank may have logged one more)
    assert twice == list(range(report["checkpoint_step"] + 1, report["checkpoint_step"] + lost + 1))
    since_checkpoint = report["kill_step"] - report["checkpoint_step"]
    assert since_checkpoint <= lost <= since_checkpoint + 1
    assert 1 <= lost <= CHECKPOINT_EVERY
