"""MLflow tracking for every job: where the tracking server is, runs and their params, metrics, models.

Pre-training, evaluation and inference each log one run. A pre-training run is created (or continued)
by the driver, which logs the full resolved config as params and tags it with the Ray Train run name;
its id travels to the workers and is saved in every checkpoint, so a resumed run (same ``run.name``)
keeps writing to the same MLflow run; only the driver and rank 0 talk to the tracking server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jointssl import storage
from jointssl.config import JobConfig, flatten, to_dict

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
    params = {k: str(v)[:6000] for k, v in flatten(to_dict(config)).items()}
    log_params(client, run.info.run_id, params)
    return run.info.run_id


def experiment_id(config: JobConfig, uri: str) -> str:
    """The id of tracking.experiment, created on first use (sqlite: artifacts under storage.root)."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(config.tracking.experiment, artifact_location=_local_artifact_root(config, uri))


def _local_artifact_root(config: JobConfig, uri: str) -> str | None:
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


class MetricLogger:
    """Per-step and per-epoch metrics and epoch artifacts into one run (used on rank 0 only)."""

    def __init__(self, uri: str, run_id: str):
        import mlflow

        self.client = mlflow.MlflowClient(uri)
        self.run_id = run_id

    def log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric
        import time

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_artifact(self, path: str, folder: str) -> None:
        """Upload the file ``path`` to ``<run artifacts>/<folder>/``."""
        self.client.log_artifact(self.run_id, path, artifact_path=folder)


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
