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


def last_logged_step(tracking_uri: str) -> int | None:
    """Highest step whose loss rank 0 has logged to MLflow (None before the run exists)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("jointssl")
    runs = client.search_runs([experiment.experiment_id]) if experiment is not None else []
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")] if runs else []
    return max(steps) if steps else None


def next_checkpoint(step: int) -> int:
    """The step of the first checkpoint after ``step``: every CHECKPOINT_EVERY steps and at epoch ends."""
    return min((step // CHECKPOINT_EVERY + 1) * CHECKPOINT_EVERY, (step // STEPS_PER_EPOCH + 1) * STEPS_PER_EPOCH)


def train_worker_pids(env: dict[str, str]) -> list[int]:
    """PIDs of the live Ray Train workers on the cluster (``ray list actors``, the state API's CLI)."""
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    done = subprocess.run([ray, "list", "actors", "--filter", "class_name=RayTrainWorker", "--filter", "state=ALIVE",
                           "--format", "json"], env=env, capture_output=True, text=True, timeout=60)
    return [a["pid"] for a in json.loads(done.stdout)] if done.returncode == 0 else []


def kill_a_worker_mid_epoch(run_folder: Path, tracking_uri: str, env: dict[str, str], report: dict,
                            stop: threading.Event) -> None:
    """SIGKILL one RayTrainWorker's process mid-epoch, after a committed checkpoint and before the next
    one is reported (so the steps lost are exactly those trained since that checkpoint)."""
    deadline = time.monotonic() + 300
    pid = None
    while not stop.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
        checkpoint = committed_step(run_folder)
        if checkpoint is None:
            continue
        if pid is None:  # the workers that wrote it: look up once, so the kill follows the step check at once
            pid = next(iter(train_worker_pids(env)), None)
            continue
        try:
            step = last_logged_step(tracking_uri)
        except Exception as err:  # noqa: BLE001 - e.g. sqlite busy while rank 0 writes: look again
            report["last_read_error"] = repr(err)
            continue
        if step is not None and checkpoint < step < next_checkpoint(checkpoint) and step % STEPS_PER_EPOCH:
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
            "--pretrain.checkpoint_every", str(CHECKPOINT_EVERY), "--pretrain.max_failures", "1"]

    report: dict = {}
    stop = threading.Event()
    killer = threading.Thread(target=kill_a_worker_mid_epoch,
                              args=(tmp_path / "checkpoints" / "faults", tracking, env, report, stop))
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
    assert report["kill_step"] - report["checkpoint_step"] <= lost <= report["kill_step"] - report["checkpoint_step"] + 1
    assert 1 <= lost <= CHECKPOINT_EVERY
