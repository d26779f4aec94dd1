"""A whole Ray node lost during 'jointssl pretrain': two CPU workers on a cluster of two one-CPU nodes
(two raylets on this machine, in the loopback-only namespace), one worker per node. The second node's
raylet is SIGKILLed by its PID mid-epoch, after a committed checkpoint; a replacement node joins a few
seconds later (capacity returns). Ray Train (``FailureConfig``) restarts the worker group once both
workers fit again and the run resumes from the last committed checkpoint: same MLflow run, every step
trained, the steps trained twice are those since that checkpoint (<= one checkpoint interval).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import threading
import time

import pytest

from tests.support.ray_nodes import long_fault_test, raylet_pid, two_nodes
from tests.train.test_pretrain_faults import (
    CHECKPOINT_EVERY,
    STEPS_PER_EPOCH,
    committed_step,
    next_checkpoint,
    recorded,
)
from tests.train.test_pretrain_ray import TINY

pytestmark = [pytest.mark.slow, pytest.mark.services,
              pytest.mark.platform_lane]  # beside the end-to-end tests: the two lanes end closer together



@pytest.fixture()
def one_cpu_nodes():
    """(cluster, the second node): a head and a second node with one CPU each: one train worker per node."""
    with two_nodes(cpus=1) as nodes:
        yield nodes


def lose_the_node_mid_epoch(cluster, node, run_folder, report: dict, training: threading.Thread) -> None:
    """SIGKILL the node's raylet once a worker has trained a step after a committed checkpoint (and before the
    next), then add a replacement node of the same size once the GCS has marked the lost one dead. Runs in the
    main thread: Ray starts a node's processes only from there (it sets a SIGTERM handler)."""
    import ray

    deadline = time.monotonic() + 240
    while training.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
        checkpoint = committed_step(run_folder)
        if checkpoint is None:
            continue
        for step in range(checkpoint + 1, next_checkpoint(checkpoint)):
            trained = recorded(run_folder, step) is not None and recorded(run_folder, step + 1) is None
            if step % STEPS_PER_EPOCH and trained:
                pid = raylet_pid(node)
                os.kill(pid, signal.SIGKILL)
                report.update(pid=pid, checkpoint_step=checkpoint, kill_step=step, at=time.monotonic())
                while training.is_alive() and any(n["NodeID"] == node.node_id and n["Alive"] for n in ray.nodes()):
                    time.sleep(0.2)
                report["dead_after_s"] = time.monotonic() - report["at"]
                cluster.add_node(num_cpus=1)
                report["replaced_after_s"] = time.monotonic() - report["at"]
                return
    report["error"] = "found no moment to lose the node between a committed checkpoint and the next one"


def run_main(argv: list[str], result: dict) -> None:
    """``jointssl <argv>`` with its stdout captured into ``result`` (run in a thread)."""
    from jointssl.cli import main

    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            result["code"] = main(argv)
    finally:
        result["out"] = buffer.getvalue()


@long_fault_test
def test_a_lost_node_resumes_from_the_last_checkpoint_when_capacity_returns(one_cpu_nodes, test_world, tmp_path,
                                                                            monkeypatch):
    import mlflow

    cluster, second = one_cpu_nodes
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")  # commits checkpoints promptly
    monkeypatch.setenv("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "20")  # retries placement every 20 s
    argv = ["pretrain", "--config", "configs/test.yaml", "--storage.root", str(tmp_path), *test_world.args(), *TINY,
            "--run.name", "node", "--pretrain.epochs", "2", "--pretrain.batch_size", "2",
            "--pretrain.cpus_per_worker", "1", "--pretrain.checkpoint_every", str(CHECKPOINT_EVERY),
            "--pretrain.max_failures", "1", "--pretrain.record_sites", "true"]
    report: dict = {}
    result: dict = {}
    training = threading.Thread(target=run_main, args=(argv, result))
    training.start()
    try:
        lose_the_node_mid_epoch(cluster, second, tmp_path / "checkpoints" / "node", report, training)
    finally:
        training.join(timeout=400)
    out = result.get("out", "")
    assert "pid" in report and "error" not in report, report
    assert result.get("code") == 0, out[-4000:]
    summary = json.loads(out[out.index("{\n"):])
    assert summary["steps"] == 2 * STEPS_PER_EPOCH and summary["epochs"] == 2
    # The lost node's worker process outlives its raylet until Ray Train's health check fails it (~15 s: the GCS
    # must first mark the node dead), and checkpoints it commits meanwhile count: the run resumes from the last.
    resumed = [int(m) for m in re.findall(r"\[pretrain\] resuming from checkpoint at step (\d+)", out)]
    assert len(resumed) == 1 and resumed[0] >= report["checkpoint_step"], (resumed, report)

    client = mlflow.MlflowClient(summary["tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name("jointssl").experiment_id])
    assert [r.info.run_id for r in runs] == [summary["mlflow_run_id"]] and runs[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(summary["mlflow_run_id"], "loss")]
    assert sorted(set(steps)) == list(range(1, summary["steps"] + 1))  # every step trained
    twice = sorted(s for s in set(steps) if steps.count(s) > 1)
    lost = len(steps) - len(set(steps))
    print(f"node lost: raylet PID {report['pid']} SIGKILLed at step {report['kill_step']} (checkpoint at step "
          f"{report['checkpoint_step']}), resumed from the checkpoint at step {resumed[0]}; node dead after "
          f"{report['dead_after_s']:.1f} s, replaced after "
          f"{report['replaced_after_s']:.1f} s; steps trained twice {twice} ({lost} lost; checkpoint_every "
          f"{CHECKPOINT_EVERY})")
    assert twice == list(range(resumed[0] + 1, resumed[0] + lost + 1))
    assert lost <= CHECKPOINT_EVERY


def test_no_room_for_the_workers_stops_with_a_resumable_error(one_cpu_nodes, test_world, tmp_path, monkeypatch,
                                                              capsys):
    """The node is lost and never replaced: the run stops after a bounded wait with one error saying how to
    resume, instead of waiting forever for a worker group that cannot be placed (Ray Train's default)."""
    import ray

    from jointssl.cli import main
    from jointssl.train import trainer

    _, second = one_cpu_nodes
    os.kill(raylet_pid(second), signal.SIGKILL)
    while any(n["NodeID"] == second.node_id and n["Alive"] for n in ray.nodes()):
        time.sleep(0.1)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "2")
    monkeypatch.setattr(trainer, "CAPACITY_RETRIES", 1)
    started = time.monotonic()
    code = main(["pretrain", "--config", "configs/test.yaml", "--storage.root", str(tmp_path), *test_world.args(),
                 *TINY, "--run.name", "stuck", "--pretrain.epochs", "1", "--pretrain.cpus_per_worker", "1"])
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    print(f"no room after the node loss: exit {code} after {seconds:.1f} s: {err.strip().splitlines()[-2:]}")
    assert code == 1 and "pre-training run 'stuck' stopped" in err and "no checkpoint was committed yet" in err
    assert "re-run the same command (--run.name stuck) once the cluster has room for 2 workers" in err
    assert "worker group startup timed out" in err  # the cause, from Ray Train
