"""The chaos run's training phase (step 4 of :mod:`jointssl.bench.chaos`): a small pre-training run on a Ray
of two nodes on this machine (``ray.cluster_utils``: two raylets; the head, the driver's node, with one CPU,
the second with room for both one-CPU train workers, which Ray Train packs there) while the seeded
schedule of :data:`jointssl.bench.chaos.TRAIN_KINDS` is applied from the main thread (Ray starts a node's
processes only from there): a Ray Train worker SIGKILLed by PID, the second node's raylet and every process
under it SIGKILLed by PID (a node loss: once the GCS has marked it dead a replacement node of the same size
joins, so capacity returns), the MLflow server restarted. The schedule's clock starts at the first step
trained. Ray Train (``pretrain.max_failures``) restarts the worker group from the last committed checkpoint;
a run that stops with an error is re-run with the same command, a new ``jointssl pretrain`` process (it
resumes).

Steps lost are counted from the run's per-step records (``pretrain.record_sites``: each rank writes, for each
step it trains, a record naming its process before a checkpoint can commit that step; a step trained again
is written again by a new process). Right after each fault the records are read: the steps whose record a
later process rewrote before the next fault (or the end) are the steps that fault made the run train again.
Recovery time is from the fault to the first step logged in MLflow after the service or the worker group
was back.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jointssl.bench.chaos import (
    NODE_LOSS,
    PROCESS_KILLS,
    TRAIN_KINDS,
    Action,
    Applied,
    ChaosSettings,
    Injector,
    fault_schedule,
    kill_actions,
)
from jointssl.compute import environment

if TYPE_CHECKING:
    from jointssl.config.schema import JobConfig

CHECKPOINT_EVERY = 4
TRAIN_ARGS = ["--run.name", "chaos-train", "--model.backbone", "resnet10t", "--model.shared_trunk", "true",
              "--model.small_input_max_px", "64", "--model.embed_dim", "32", "--model.proj_hidden_dim", "32",
              "--model.proj_dim", "16", "--pretrain.batch_size", "2", "--pretrain.num_workers", "2",
              "--pretrain.cpus_per_worker", "1", "--pretrain.checkpoint_every", str(CHECKPOINT_EVERY),
              "--pretrain.record_sites", "true", "--pretrain.poll_interval_s", "0.2"]
"""The small pre-training run: the test suite's tiny model, two one-CPU workers, polled every 0.2 s."""
TRAIN_ENV = {"RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "30"}
"""Placement retried every 30 s, not 60 s."""
NODE_CPUS = 2
"""CPUs of the second node (and of its replacement): both train workers."""
RESUMED = "[pretrain] resuming from checkpoint at step"
NODE_DEAD_S = 90.0
"""How long a node loss waits for the GCS to mark the node dead before adding the replacement anyway."""
NEW_WORKERS_S = 180.0
"""How long a kill or node loss waits for the worker group's restart before the next fault."""


@dataclass
class TrainOutcome:
    finished: bool
    steps: int
    """Steps of the finished run (0: not finished)."""
    checkpoint_every: int
    errors: list[str] = field(default_factory=list)
    """Errors of the attempts that stopped before the last (each re-run resumed)."""
    resumes: int = 0
    """Resumes from a checkpoint (the run's "resuming from checkpoint" lines): Ray Train's restarts and re-runs."""
    steps_retrained: int = 0
    points_lost: float | None = None
    """The run's ``tracking_points_lost`` metric (MLflow points dropped during outages), if recorded."""


def train_workers() -> set[int]:
    """PIDs of this process's Ray Train worker processes (every node's raylet is a child of this process)."""
    from jointssl.bench.infer import _kind, _tree

    return {p for p in _tree(os.getpid()) if PROCESS_KILLS["train_worker_kill"] in _kind(p)}


def _trained_a_step(config: JobConfig) -> bool:
    """The run has logged a training step (asked once a second): the schedule's clock starts."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from jointssl.tracking import RUN_NAME_TAG

    time.sleep(1.0)
    client = mlflow.MlflowClient(str(config.tracking.uri))
    try:
        experiment = client.get_experiment_by_name(config.tracking.experiment)
        runs = client.search_runs([experiment.experiment_id], f"tags.`{RUN_NAME_TAG}` = '{config.run.name}'",
                                  max_results=1) if experiment else []
    except MlflowException:  # not answering now: ask again
        return False
    return bool(runs) and "loss" in runs[0].data.metrics


def _await_new_workers(before: set[int], entry: Applied, stop: threading.Event) -> None:
    """Back: when a worker process not in ``before`` runs (the worker group restarted), or training ended."""
    deadline = time.monotonic() + NEW_WORKERS_S
    while not stop.is_set() and time.monotonic() < deadline and not train_workers() - before:
        time.sleep(0.2)
    entry.back_at = time.time()


def trained_steps(config: JobConfig) -> dict[str, int]:
    """The run's per-step records (``pretrain.record_sites``): record file name -> PID of the process that
    trained that step last; a store that is restarting is waited for."""
    from jointssl import storage
    from jointssl.train.checkpoint import checkpoint_root

    url = storage.join(checkpoint_root(config), config.run.name, "trained_sites")
    fs, path = storage.filesystem(url)

    def read() -> dict[str, int]:
        files = sorted(fs.glob(f"{path}/epoch_*/step_*_rank_*.json"))
        bodies = fs.cat(files) if files else {}
        return {name.rsplit("/", 1)[-1]: int(json.loads(body)["pid"]) for name, body in bodies.items()}

    return storage.patiently(url, f"reading the step records under {url}", read)


def raylet_pid(node: Any) -> int:
    """PID of a ``ray.cluster_utils`` node's raylet."""
    from ray._private import ray_constants

    return int(node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)


class NodeLoss:
    """The second node of a two-node ``ray.cluster_utils.Cluster``: lost (raylet SIGKILL) and replaced."""

    def __init__(self, cluster: Any, stop: threading.Event, config: JobConfig):
        self.cluster, self.stop, self.config = cluster, stop, config
        self.node = cluster.add_node(num_cpus=NODE_CPUS)

    def lose(self, entry: Applied) -> bool:
        import ray

        from jointssl.bench.infer import _tree

        before = train_workers()
        pid = raylet_pid(self.node)
        for each in _tree(pid):  # the raylet and every process of the node: the machine is gone
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        entry.at = time.time()
        entry.trained = trained_steps(self.config)
        deadline = time.monotonic() + NODE_DEAD_S
        while time.monotonic() < deadline and any(
                n["NodeID"] == self.node.node_id and n["Alive"] for n in ray.nodes()):  # type: ignore[no-untyped-call]
            time.sleep(0.2)
        dead_s = time.time() - entry.at
        self.node = self.cluster.add_node(num_cpus=NODE_CPUS)
        _await_new_workers(before, entry, self.stop)
        entry.detail = (f"SIGKILL raylet PID {pid}; node dead after {dead_s:.1f} s, replacement joined, workers "
                        f"back after {(entry.back_at or entry.at) - entry.at:.1f} s")
        return True


def worker_kill(stop: threading.Event, seed: int, config: JobConfig) -> Action:
    """A train worker SIGKILLed (:func:`jointssl.bench.chaos.kill_actions`), back when the group restarted."""
    kill = kill_actions(seed)["train_worker_kill"]

    def apply(entry: Applied) -> bool:
        before = train_workers()
        if not kill(entry):
            return False
        entry.trained = trained_steps(config)
        _await_new_workers(before, entry, stop)
        return True

    return apply


def recorded_first(action: Action, config: JobConfig) -> Action:
    """``action`` (a service restart: training goes on) with the step records read when it is applied."""

    def apply(entry: Applied) -> bool:
        entry.trained = trained_steps(config)
        return action(entry)

    return apply


def chaos_training(config: JobConfig, settings: ChaosSettings, restarts: dict[str, Action], first: int,
                   started: float) -> tuple[list[Applied], TrainOutcome]:
    """The training phase of the module docstring; ``first`` numbers its faults after the inference ones."""
    import ray
    from ray.cluster_utils import Cluster

    config = train_config(config, settings)
    with environment(TRAIN_ENV):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        try:
            schedule = fault_schedule(settings.seed + 2, settings.train_faults, settings.train_duration_s,
                                      TRAIN_KINDS, first)
            injector = Injector(schedule, {}, ready=lambda: _trained_a_step(config))
            nodes = NodeLoss(cluster, injector.stop, config)
            injector.actions = {**{k: recorded_first(a, config) for k, a in restarts.items()},
                                "train_worker_kill": worker_kill(injector.stop, settings.seed + 3, config),
                                NODE_LOSS: nodes.lose}
            ray.init(address=cluster.address, log_to_driver=False)
            cluster.wait_for_nodes()
            result: dict[str, Any] = {"errors": [], "resumes": 0}
            training = threading.Thread(target=_train, args=(config, cluster.address, settings, started, injector,
                                                             result),
                                        daemon=True)
            training.start()
            injector.run()  # the main thread, until every fault is applied or training has ended
            training.join(timeout=max(1.0, settings.max_seconds - (time.monotonic() - started)))
            result["trained"] = trained_steps(config)
        finally:
            ray.shutdown()
            cluster.shutdown()  # type: ignore[no-untyped-call]  # unannotated in ray
    outcome = _outcome(config, result, injector.applied)
    return injector.applied, outcome


def train_config(config: JobConfig, settings: ChaosSettings) -> JobConfig:
    from jointssl.config.load import from_dict, parse_overrides, set_dotted, to_dict
    from jointssl.config.schema import JobConfig

    tree = to_dict(config)
    args = [*TRAIN_ARGS, "--pretrain.epochs", str(settings.train_epochs),
            "--pretrain.max_failures", str(settings.train_faults + 2)]
    for key, value in parse_overrides(args):
        set_dotted(tree, key, value)
    return from_dict(JobConfig, tree, "the chaos run's training settings")


def _train(config: JobConfig, address: str, settings: ChaosSettings, started: float, injector: Injector,
           result: dict[str, Any]) -> None:
    """``jointssl pretrain`` in a new process on the cluster at ``address`` until it completes, re-running the
    same command after an error (a resume): a new driver each time, as an operator's, so what a failed run's
    job held (placement groups, actors) is released with it."""
    import yaml

    from jointssl.config.load import to_dict

    with tempfile.TemporaryDirectory(prefix="jointssl-chaos-train-") as tmp:
        path = os.path.join(tmp, "pretrain.yaml")
        with open(path, "w") as handle:
            yaml.safe_dump(to_dict(config), handle)
        argv = [sys.executable, "-m", "jointssl", "pretrain", "--config", path, "--ray.address", address]
        try:
            while (left := settings.max_seconds - (time.monotonic() - started)) > 0:
                try:
                    done = subprocess.run(argv, capture_output=True, text=True, timeout=left)
                except subprocess.TimeoutExpired:
                    result["errors"].append("TimeoutExpired: past the chaos run's bound")
                    return
                print(done.stdout + done.stderr, flush=True)
                result["resumes"] += done.stdout.count(RESUMED)
                if done.returncode == 0:
                    result["summary"] = json.loads(done.stdout[done.stdout.index("{\n"):])
                    return
                said = [line for line in done.stderr.splitlines() if "pretrain: error: " in line]  # a JointsslError
                result["errors"].append(f"JointsslError: {said[-1].split(': error: ', 1)[1][:300]}" if said
                                        else f"exit {done.returncode}: {done.stderr.strip()[-300:]}")
                print(f"[chaos] training stopped ({result['errors'][-1]}); re-running", flush=True)
                time.sleep(2.0)
        finally:
            injector.stop.set()


def _outcome(config: JobConfig, result: dict[str, Any], applied: list[Applied]) -> TrainOutcome:
    """Steps lost per fault and recovery times (see the module docstring) from the run's MLflow history."""
    import mlflow

    from jointssl.tracking import RUN_NAME_TAG

    summary = result.get("summary") or {}
    client = mlflow.MlflowClient(str(config.tracking.uri))
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    runs = client.search_runs([experiment.experiment_id], f"tags.`{RUN_NAME_TAG}` = '{config.run.name}'") \
        if experiment else []
    # a re-run before the first checkpoint starts a new MLflow run: its steps 1.. count as a resume from 0
    history = sorted((m.timestamp / 1000, m.step) for run in runs
                     for m in client.get_metric_history(run.info.run_id, "loss"))
    lost_points = sum(run.data.metrics.get("tracking_points_lost", 0.0) for run in runs)
    retrained = _retrained(history)
    _charge(applied, history, result.get("trained") or {})
    return TrainOutcome(finished=bool(summary), steps=int(summary.get("steps", 0)),
                        checkpoint_every=config.pretrain.checkpoint_every, errors=result["errors"],
                        resumes=result["resumes"], steps_retrained=sum(n for _, n in retrained),
                        points_lost=lost_points)


def _retrained(history: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """(when, steps trained again) of each resume that re-trained steps: a step logged at or below the one
    before it (a resume from the step last logged re-trains nothing and does not show here)."""
    retrained, last = [], 0
    for when, step in history:
        if step <= last:
            retrained.append((when, last - step + 1))
        last = step
    return retrained


def _charge(applied: list[Applied], history: list[tuple[float, int]], final: dict[str, int]) -> None:
    """Each fault: the steps whose record a later process rewrote before the next fault's records were read (or
    the end's), and its recovery time: to the first step logged after it was back (the worker group restarted,
    or the service healthy again)."""
    done = sorted((a for a in applied if a.at is not None), key=lambda a: a.at or 0.0)
    for entry, following in zip(done, [*done[1:], None], strict=True):
        after = (following.trained if following is not None else None) or final
        if entry.trained is not None:
            entry.steps_lost = len({_step(name) for name, pid in entry.trained.items()
                                    if after.get(name, pid) != pid})
        later = [t for t, _ in history if t > (entry.back_at or entry.at or 0.0)]
        if later and entry.at is not None:
            entry.recovery_s = max(0.0, later[0] - entry.at)


def _step(record: str) -> int:
    """'step_000012_rank_1.json' -> 12."""
    return int(record.split("_")[1])
