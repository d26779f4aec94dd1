"""A chaos run: a seeded random schedule of faults over repeated inference runs and a training run, on the
local platform's storage and tracking.

``jointssl bench chaos --faults N --train-faults M --duration S --seed K`` (or ``scripts/chaos.sh``):

1. SeaweedFS (S3) and an ``mlflow server`` (with its PostgreSQL) of the run's own, started by the
   platform's code (:mod:`jointssl.bench.chaos_services`); the world and its index generated into S3; a
   classifier of the config's architecture with random weights registered on that MLflow server; the
   world's catalog served by ``rustac`` on 127.0.0.1 behind a fault-injecting proxy
   (:mod:`jointssl.bench.chaos_proxy`); one local Ray;
2. a reference inference run without faults over ~1 km squares around the world's sites: the tiles every
   run must write exactly once;
3. :func:`fault_schedule` draws N - M faults of :data:`INFER_KINDS` at random moments of S seconds
   (seeded): STAC 429 / 500 / 503 / slow (longer than ``stac.timeout_s``) / truncated pages, SIGKILLs of a
   chip loader or predictor actor process (by PID, a process of this run's Ray), SeaweedFS and MLflow
   killed by PID and restarted a few seconds later (:data:`SERVICE_RESTARTS`). An injector thread applies
   them on time while inference runs back to back, each into a new folder in S3; a run that stops with an
   error is re-run with the same command (it resumes with the cells not written), as an operator would,
   and the error is reported;
4. a training run (:mod:`jointssl.bench.chaos_train`) on a two-node Ray with M faults of
   :data:`TRAIN_KINDS`: a Ray Train worker SIGKILLed, the second node's raylet SIGKILLed (a node loss; a
   replacement node joins), MLflow restarted; steps lost per fault;
5. the report (:mod:`jointssl.bench.chaos_report`): faults injected and met, recoveries and p50/p95
   recovery time (STAC: from the failed request to the next answer served whole; actor kill: from the kill
   to the next partition committed; restart: from the kill to the next partition committed, or training
   step logged, after the service is healthy again; train worker kill / node loss: to the first step
   re-trained after the resume), tiles duplicated and missing per run against the reference (goal 0/0),
   steps lost per training fault (goal <= one checkpoint interval), and the machine's load.

Everything listens on 127.0.0.1; Ray binds on every interface unless run in the loopback-only network
namespace (``infra/local/loopback-netns.sh``), as scripts/chaos.sh does.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jointssl.bench.chaos_services import SERVICE_RESTARTS
from jointssl.errors import JointsslError

if TYPE_CHECKING:
    from jointssl.bench.chaos_proxy import StacFaultProxy
    from jointssl.bench.chaos_services import ChaosPlatform
    from jointssl.bench.chaos_train import TrainOutcome
    from jointssl.config.schema import JobConfig

STAC_FAULTS: dict[str, tuple[Any, ...]] = {
    "stac_429": ("status", 429), "stac_500": ("status", 500), "stac_503": ("status", 503),
    "stac_slow": ("slow", None), "stac_truncated": ("truncate",)}
"""STAC fault kinds and what the proxy does (slow: ``stac.timeout_s`` + 1 s)."""
PROCESS_KILLS = {"loader_kill": "TileChipLoader", "predictor_kill": "TilePredictor",
                 "train_worker_kill": "RayTrainWorker"}
"""Process-kill fault kinds and the Ray actor class whose process is SIGKILLed."""
NODE_LOSS = "node_loss"
"""The second Ray node's raylet SIGKILLed (applied by :mod:`jointssl.bench.chaos_train`)."""
INFER_KINDS = (*STAC_FAULTS, "loader_kill", "predictor_kill", *SERVICE_RESTARTS)
TRAIN_KINDS = ("train_worker_kill", NODE_LOSS, "mlflow_restart")
KINDS = tuple(dict.fromkeys((*INFER_KINDS, *TRAIN_KINDS)))
MARKERS = ("<!-- chaos:begin -->", "<!-- chaos:end -->")
"""Around the generated section of docs/reliability.md (:mod:`jointssl.bench.chaos_report`)."""

Action = Callable[["Applied"], bool]
"""Applies a fault now: False when it has no target at this moment (tried again 0.1 s later)."""


@dataclass(frozen=True)
class ChaosSettings:
    seed: int = 0
    faults: int = 5
    """All faults, the training run's included."""
    train_faults: int = 0
    """Faults drawn into the training run (0: no training run)."""
    duration_s: float = 60.0
    """Inference faults are drawn over this many seconds; that phase ends when all were applied and a run
    completed."""
    train_duration_s: float = 60.0
    """Training faults are drawn over this many seconds from the training run's start."""
    train_epochs: int = 16
    """Epochs of the training run (6 steps each on the test world): long enough to outlast its faults."""
    sites: int | None = None
    """Sites of the world whose ~1 km squares make up the inference area (None: all)."""
    stac_timeout_s: float = 2.0
    max_seconds: float = 1800.0
    """Hard bound: past it the run stops, reporting faults not applied."""


@dataclass(frozen=True)
class Fault:
    number: int
    at_s: float
    kind: str


@dataclass
class Applied:
    fault: Fault
    at: float | None = None
    """When it was applied (wall clock, time.time()); None: never (no target in time)."""
    detail: str = ""
    back_at: float | None = None
    """Restarts: when the service was healthy again (wall clock)."""
    recovery_s: float | None = None
    steps_lost: int | None = None
    """Training faults: steps trained again after the resume(s) that followed it."""
    trained: dict[str, int] | None = None
    """Training faults: the run's per-step records right after it (record file -> PID that trained the step)."""


@dataclass
class ChaosResult:
    settings: ChaosSettings
    applied: list[Applied]
    runs: list[dict[str, Any]] = field(default_factory=list)
    """Per completed inference run: tiles, duplicates, missing, extra, errors of the attempts before."""
    train: TrainOutcome | None = None
    seconds: float = 0.0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)


def fault_schedule(seed: int, faults: int, duration_s: float, kinds: tuple[str, ...] = INFER_KINDS,
                   first: int = 0) -> list[Fault]:
    """``faults`` faults at uniform random moments of ``duration_s`` seconds, kinds drawn uniformly; seeded;
    numbered from ``first``."""
    rng = random.Random(seed)
    moments = sorted(rng.uniform(0.0, duration_s) for _ in range(faults))
    return [Fault(first + i, round(t, 3), rng.choice(kinds)) for i, t in enumerate(moments)]


class Injector(threading.Thread):
    """Applies the schedule on time, each fault by its kind's action (see :data:`Action`); run as a thread
    (inference) or by calling :meth:`run` in the main thread (training: Ray adds a node only from there)."""

    def __init__(self, schedule: list[Fault], actions: dict[str, Action], ready: Callable[[], bool] | None = None):
        super().__init__(daemon=True)
        self.applied = [Applied(f) for f in schedule]
        self.actions = actions
        self.ready = ready
        """The schedule's clock starts once this is true (None: at once)."""
        self.stop = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        while self.ready is not None and not self.stop.is_set() and not self.ready():
            time.sleep(0.1)
        start = time.monotonic()
        for entry in self.applied:
            while not self.stop.is_set() and time.monotonic() - start < entry.fault.at_s:
                time.sleep(0.05)
            while not self.stop.is_set() and not self.actions[entry.fault.kind](entry):
                time.sleep(0.1)  # no target of that kind right now (between runs, restarting): try again
            if self.stop.is_set():
                break
        self.done.set()


def stac_actions(proxy: StacFaultProxy, slow_s: float) -> dict[str, Action]:
    def queue(entry: Applied) -> bool:
        fault = STAC_FAULTS[entry.fault.kind]
        proxy.inject(entry.fault.number, ("slow", slow_s) if fault[0] == "slow" else fault)
        entry.at, entry.detail = time.time(), "queued at the proxy"
        return True

    return dict.fromkeys(STAC_FAULTS, queue)


def kill_actions(seed: int) -> dict[str, Action]:
    """SIGKILL a random process of this run's Ray whose actor class the kind names (by PID)."""
    from jointssl.bench.infer import _kind, _tree

    rng = random.Random(seed)

    def kill(entry: Applied) -> bool:
        actor = PROCESS_KILLS[entry.fault.kind]
        targets = sorted(p for p in _tree(os.getpid()) if actor in _kind(p))
        if not targets:
            return False
        pid = rng.choice(targets)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        entry.at, entry.detail = time.time(), f"SIGKILL {actor} PID {pid}"
        return True

    return dict.fromkeys(PROCESS_KILLS, kill)


def restart_actions(services: ChaosPlatform) -> dict[str, Action]:
    def restart(entry: Applied) -> bool:
        name, down_s = SERVICE_RESTARTS[entry.fault.kind]
        entry.at, entry.back_at = services.restart(name, down_s)
        entry.detail = f"{name} SIGKILLed, healthy again after {entry.back_at - entry.at:.1f} s"
        return True

    return dict.fromkeys(SERVICE_RESTARTS, restart)


def run_chaos(config: JobConfig, settings: ChaosSettings) -> ChaosResult:
    """The chaos run of the module docstring on the world ``config`` describes (generated anew in S3)."""
    import ray

    from jointssl.bench.chaos_infer import chaos_inference, prepare
    from jointssl.bench.chaos_services import chaos_platform
    from jointssl.compute import environment

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jointssl-chaos-") as tmp, chaos_platform() as services, \
            environment(services.env()):
        config = s3_config(config, services)
        ray_here(config)
        try:
            config = prepare(config, settings, Path(tmp))
            applied, runs = chaos_inference(config, settings, services, Path(tmp), started)
        finally:
            ray.shutdown()
        train = None
        if settings.train_faults:
            from jointssl.bench.chaos_train import chaos_training

            train_applied, train = chaos_training(config, settings, restart_actions(services), len(applied),
                                                  started)
            applied += train_applied
    return ChaosResult(settings, applied, runs, train, time.monotonic() - started, os.getloadavg())


def s3_config(config: JobConfig, services: ChaosPlatform) -> JobConfig:
    """``config`` with storage.root in the chaos platform's bucket and tracking on its MLflow server."""
    root = f"s3://jointssl/chaos-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    uri = services.env()["MLFLOW_TRACKING_URI"]
    config = dataclasses.replace(config, storage=dataclasses.replace(config.storage, root=root),
                                 tracking=dataclasses.replace(config.tracking, uri=uri))
    return dataclasses.replace(config, world=dataclasses.replace(config.world, out=None),
                               index=dataclasses.replace(config.index, out=None))


def ray_here(config: JobConfig) -> None:
    """A Ray of this process ("local": never another one found on the machine): its processes are ours to
    kill; started after :func:`jointssl.compute.environment`, so its workers reach the chaos platform."""
    import ray

    address = os.environ.pop("RAY_ADDRESS", None)
    try:
        ray.init(address="local", num_cpus=config.ray.num_cpus, include_dashboard=False, log_to_driver=False)
    finally:
        if address is not None:
            os.environ["RAY_ADDRESS"] = address


def check_bound(started: float, settings: ChaosSettings, what: str) -> None:
    if time.monotonic() - started > settings.max_seconds:
        raise JointsslError(f"chaos run past {settings.max_seconds:g} s during {what}",
                            hint="give more --max-seconds, or fewer faults / a shorter --duration")
