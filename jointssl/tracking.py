"""MLflow tracking for every job: where the tracking server is, runs and their params, metrics, models.

Pre-training, evaluation and inference each log one run. A pre-training run is created (or continued)
by the driver, which logs the full resolved config as params and tags it with the Ray Train run name;
its id travels to the workers and is saved in every checkpoint, so a resumed run (same ``run.name``)
keeps writing to the same MLflow run; only the driver and rank 0 talk to the tracking server.

An outage of the tracking server during a job never ends it: a run's metrics and artifacts go through
:class:`MetricLogger` (queued, retried, sent when the server is back, or counted lost), and the records
made when a job finishes through :func:`record` (bounded retries, then a warning). Creating or
continuing a run (:func:`start_run`) needs the server: a job whose server is down at its start fails
there, with MLflow's error.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jointssl import storage
from jointssl.config import JobConfig, flatten, to_dict

log = logging.getLogger(__name__)

RUN_NAME_TAG = "jointssl.train_run"
"""Tag linking an MLflow run to its Ray Train run name (the checkpoint folder under storage.root)."""


def tracking_uri(config: JobConfig) -> str:
    """tracking.uri, else MLFLOW_TRACKING_URI, else sqlite:///<absolute storage.root>/mlflow.db."""
    uri = config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    if storage.is_remote(config.storage.root):
        raise ValueError("a remote storage.root needs tracking.uri or MLFLOW_TRACKING_URI (sqlite is local only)")
    root = os.path.abspath(config.storage.root)
    os.makedirs(root, exist_ok=True)
    return f"sqlite:///{root}/mlflow.db"


def start_run(config: JobConfig, uri: str, run_id: str | None) -> str:
    """Continue ``run_id`` (a resume) or create a run named after ``run.name`` with the config as params."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
        return run_id
    run = client.create_run(experiment_id(config, uri), run_name=config.run.name, tags={RUN_NAME_TAG: config.run.name})
    created: str = run.info.run_id
    params = {k: str(v)[:6000] for k, v in flatten(to_dict(config)).items()}
    log_params(client, created, params)
    return created


def experiment_id(config: JobConfig, uri: str) -> str:
    """The id of tracking.experiment, created on first use (sqlite: artifacts under storage.root)."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(config.tracking.experiment, artifact_location=local_artifact_root(config, uri))


def local_artifact_root(config: JobConfig, uri: str) -> str | None:
    """sqlite tracking: artifacts beside the database under storage.root (MLflow would otherwise put
    them in ./mlruns of whichever directory the job started in); a server decides for itself."""
    if not uri.startswith("sqlite:") or storage.is_remote(config.storage.root):
        return None
    return Path(os.path.abspath(config.storage.url("mlartifacts"))).as_uri()


def log_params(client: Any, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in sorted(params.items())]
    for start in range(0, len(items), 100):  # MLflow caps a batch at 100 params
        client.log_batch(run_id, params=items[start:start + 100])


@dataclass
class LoggerStats:
    """What a :class:`MetricLogger` did: points sent, points sent late (held while the server was down),
    points lost (over the buffer, or still held at :meth:`MetricLogger.close`), failed attempts."""

    sent: int = 0
    delayed: int = 0
    lost: int = 0
    failures: int = 0
    artifacts_lost: int = 0


class MetricLogger:
    """Per-step and per-epoch metrics and epoch artifacts into one run (used on rank 0 only), never
    blocking the caller and never raising when the tracking server is down.

    :meth:`log` and :meth:`log_artifact` queue and return; a background thread sends what is queued
    (metrics in batches, artifacts copied into a spool folder first). While the server does not answer
    it retries with backoff (``retry_s`` doubling up to ``max_retry_s``) and keeps up to ``max_points``
    points, dropping the oldest beyond (counted lost); when the server is back it sends them with their
    original step and time, and records the outage in the run itself: metrics ``tracking_points_delayed``
    and ``tracking_points_lost``. :meth:`close` waits up to ``timeout`` for the queue to drain; what is
    left is counted lost (:attr:`stats`). The run must exist: create it while the server is up. MLflow
    itself is imported by the sending thread (~1.5 s of CPU that a training worker's start need not wait for).
    """

    def __init__(self, uri: str, run_id: str, max_points: int = 100_000, retry_s: float = 0.5,
                 max_retry_s: float = 15.0):
        self.uri = uri
        self.client: Any = None
        """The MlflowClient, made by the sending thread."""
        self.run_id = run_id
        self.max_points = max_points
        self.retry_s, self.max_retry_s = retry_s, max_retry_s
        self.stats = LoggerStats()
        self._points: collections.deque[tuple[str, float, int, int]] = collections.deque()
        """(key, value, time in ms, step) of every point not sent yet."""
        self._artifacts: collections.deque[tuple[str, str]] = collections.deque()
        self._spool = tempfile.mkdtemp(prefix="jointssl-mlflow-spool-")
        self._wake = threading.Condition()
        self._closing = False
        self._outage_points = 0
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="jointssl-mlflow-logger", daemon=True)
        self._thread.start()

    def log(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        with self._wake:
            self._points.extend((k, float(v), now, step) for k, v in metrics.items())
            while len(self._points) > self.max_points:
                self._points.popleft()
                self.stats.lost += 1
            self._wake.notify()

    def log_artifact(self, path: str, folder: str) -> None:
        """Upload (a copy of) the file ``path`` to ``<run artifacts>/<folder>/``."""
        spooled = os.path.join(self._spool, f"{len(os.listdir(self._spool)):06d}", os.path.basename(path))
        os.makedirs(os.path.dirname(spooled))
        shutil.copyfile(path, spooled)
        with self._wake:
            self._artifacts.append((spooled, folder))
            self._wake.notify()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for everything queued to be sent; whether it was."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._points or self._artifacts or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.1))
        return True

    def close(self, timeout: float = 30.0) -> LoggerStats:
        """Send what is queued (up to ``timeout`` seconds), count the rest lost, stop the thread."""
        self.flush(timeout)
        with self._wake:
            self._closing = True
            self.stats.lost += len(self._points)
            self.stats.artifacts_lost += len(self._artifacts)
            self._points.clear()
            self._artifacts.clear()
            self._wake.notify()
        self._thread.join(timeout=1.0)
        shutil.rmtree(self._spool, ignore_errors=True)
        return self.stats

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # MLflow imported now, off the caller's thread; else at the first send
            self._connect()
        delay = self.retry_s
        while True:
            with self._wake:
                while not (self._points or self._artifacts or self._closing):
                    self._wake.wait()
                if self._closing:
                    return
                batch = [self._points[i] for i in range(min(len(self._points), BATCH_POINTS))]
                artifact = self._artifacts[0] if not batch and self._artifacts else None
                self._busy = True
            try:
                self._send(batch, artifact)
            except Exception as err:
                with self._wake:
                    self._busy = False
                    self.stats.failures += 1
                    if self.stats.failures == 1 or delay >= self.max_retry_s:
                        log.warning("MLflow run %s: tracking server not answering (%s); %d points held, retrying",
                                    self.run_id, _first_line(err), len(self._points))
                    self._outage_points = max(self._outage_points, len(self._points))
                    self._wake.wait(delay)
                delay = min(2 * delay, self.max_retry_s)
                continue
            delay = self.retry_s
            self._sent(batch, artifact)

    def _connect(self) -> Any:
        import mlflow

        if self.client is None:
            self.client = mlflow.MlflowClient(self.uri)
        return self.client

    def _send(self, batch: list[tuple[str, float, int, int]], artifact: tuple[str, str] | None) -> None:
        from mlflow.entities import Metric

        self._connect()
        if batch:
            self.client.log_batch(self.run_id, metrics=[Metric(*point) for point in batch])
        if artifact is not None:
            self.client.log_artifact(self.run_id, artifact[0], artifact_path=artifact[1])

    def _sent(self, batch: list[tuple[str, float, int, int]], artifact: tuple[str, str] | None) -> None:
        """Drop what was sent from the queues; after an outage, record it in the run."""
        with self._wake:
            for _ in batch:
                if self._points:
                    self._points.popleft()
            if artifact is not None and self._artifacts and self._artifacts[0] == artifact:
                self._artifacts.popleft()
                shutil.rmtree(os.path.dirname(artifact[0]), ignore_errors=True)
            self.stats.sent += len(batch)
            recovered = self._outage_points and not self._points
            if self._outage_points:
                self.stats.delayed += len(batch)
            if recovered:
                self._outage_points = 0
            self._busy = False
            self._wake.notify_all()
        if recovered:
            self._record_outage()

    def _record_outage(self) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        summary = [Metric("tracking_points_delayed", float(self.stats.delayed), now, 0),
                   Metric("tracking_points_lost", float(self.stats.lost), now, 0)]
        with contextlib.suppress(Exception):  # best effort: the next outage records it again
            self.client.log_batch(self.run_id, metrics=summary)
        log.warning("MLflow run %s: tracking server back; %d points sent late, %d lost",
                    self.run_id, self.stats.delayed, self.stats.lost)


def record(what: str, call: Callable[[], object], attempts: int = 3, wait_s: float = 5.0) -> bool:
    """Run the tracking ``call`` (MLflow calls that record a finished job's results), retried ``attempts``
    times ``wait_s`` apart (doubling); whether it succeeded. A tracking server that stays down is a
    warning naming ``what`` was not recorded, never the job's failure: its outputs are already written."""
    for attempt in range(attempts):
        try:
            call()
            return True
        except Exception as err:
            if attempt + 1 == attempts:
                log.warning("MLflow: %s not recorded after %d attempts: %s", what, attempts, _first_line(err))
                return False
            time.sleep(wait_s * 2**attempt)
    return False


BATCH_POINTS = 1000
"""Metrics per log_batch request (MLflow's limit)."""


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def finish_run(uri: str, run_id: str, model: Any, registered_name: str) -> str:
    """Log the encoder as an MLflow model of the ``jointssl`` flavor (weights + architecture, no pickle:
    :mod:`jointssl.models.saved`), register it, alias it 'current' (MLflow reserves 'latest';
    models:/<name>/latest resolves the newest version anyway); end the run. Returns the registered version."""
    import mlflow
    from mlflow.models import Model

    from jointssl.models.saved import MlflowFlavor, save_encoder

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    with mlflow.start_run(run_id=run_id):
        info = Model.log(None, MlflowFlavor("encoder", lambda path: save_encoder(model, path), model_requirements()),
                         name="encoder")
    version = mlflow.register_model(info.model_uri, registered_name)
    client.set_registered_model_alias(registered_name, "current", version.version)
    client.set_terminated(run_id, status="FINISHED")
    return str(version.version)


def model_requirements() -> list[str]:
    """The packages a logged jointssl model needs, stated instead of inferred: MLflow's inference loads
    the model in a subprocess to watch its imports, several seconds per logged model."""
    import numpy
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={numpy.__version__}"]
