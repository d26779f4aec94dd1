"""The study driver: schedule the trials on the Ray cluster, skip finished ones, tabulate, track in MLflow.

1. the grid (:mod:`jointssl.study.grid`) and the trials already finished (their marker in storage);
2. the parent MLflow run of the study (its id kept in <study>/study.json, so a re-run continues it);
3. the pending trials, ``concurrency`` at a time, each its own process joined to this Ray cluster
   (:mod:`jointssl.study.trial_run`); a failed trial is reported and counted, the others go on;
4. each finished trial becomes an MLflow child run of the study (tag ``mlflow.parentRunId``), the parent of
   its pre-training and evaluation runs;
5. the table and paired comparisons of every finished trial (:mod:`jointssl.study.table`) to
   <storage.root>/study/<name>/results.{md,json} and plot.png, and to the parent run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from jointssl import storage
from jointssl.config.schema import JobConfig
from jointssl.study.grid import Trial, study_name, trials
from jointssl.study.trial_run import TrialContext, TrialOutcome, finished, run_trial

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
STUDY_TAG = "jointssl.study"


def study(config: JobConfig, config_file: str | None, overrides: list[str]) -> dict[str, Any]:
    """Run (or continue) the study of ``config``; returns a JSON-able summary. Needs Ray connected."""
    from jointssl.tracking import tracking_uri

    started = time.perf_counter()
    name = study_name(config)
    grid = trials(config)
    folder = config.storage.url("study", name)
    uri = tracking_uri(config)
    context = TrialContext(os.path.abspath(config_file) if config_file else None, list(overrides), folder, uri,
                           _ray_address(), f"{name}-encoder", f"{name}-classifier")
    parent = _parent_run(config, uri, folder, name, grid)
    done = {t.name: r for t in grid if (r := finished(context, t)) is not None}
    pending = [t for t in grid if t.name not in done]
    workers = max(1, min(len(pending), config.study.concurrency or capacity(config)))
    print(f"[study] {name}: {len(grid)} trials, {len(done)} finished earlier (skipped), {len(pending)} to run, "
          f"{workers} at a time; MLflow parent run {parent}", flush=True)
    failed: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_trial, context, t) for t in pending]
        for future in as_completed(futures):
            outcome: TrialOutcome = future.result()
            t = outcome.trial
            if outcome.ok:
                done[t.name] = outcome.record
                _child_run(uri, config, parent, t, outcome.record)
                print(f"[study] trial {t.name} finished in {outcome.record['seconds']} s", flush=True)
            else:
                failed[t.name] = outcome.record
                print(f"[study] trial {t.name} FAILED: {outcome.record['error']}\n{outcome.record.get('log', '')}",
                      flush=True)
    from jointssl.study.report import publish

    table = publish(config, uri, parent, folder, [done[t.name] for t in grid if t.name in done], name) if done else {}
    return {"study": name, "out": folder, "mlflow_parent_run_id": parent, "tracking_uri": uri, "trials": len(grid),
            "finished": len(done), "skipped": len(grid) - len(pending), "failed": sorted(failed),
            "trial_seconds": {k: r.get("seconds") for k, r in done.items()},
            "comparisons": table.get("comparisons", []), "seconds": round(time.perf_counter() - started, 1)}


def capacity(config: JobConfig) -> int:
    """Trials the Ray cluster holds at once: its CPUs (and GPUs) over what one trial claims."""
    import ray

    p, s = config.pretrain, config.study
    resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
    per_trial = s.trial_cpus + (0.0 if p.use_gpu else p.num_workers * p.cpus_per_worker)
    n = math.floor(resources.get("CPU", 1.0) / per_trial) if per_trial > 0 else 1
    if p.use_gpu:
        n = min(n, math.floor(resources.get("GPU", 0.0) / p.num_workers))
    return max(1, n)


def _ray_address() -> str | None:
    """The address trial processes join: the GCS of the Ray this process is connected to."""
    import ray

    return str(ray.get_runtime_context().gcs_address) if ray.is_initialized() else None


def _parent_run(config: JobConfig, uri: str, folder: str, name: str, grid: list[Trial]) -> str:
    """The study's MLflow run: continued when <study>/study.json names one that still exists, else created."""
    import mlflow

    from jointssl.tracking import experiment_id

    client = mlflow.MlflowClient(uri)
    fs, path = storage.filesystem(storage.join(folder, "study.json"))
    if fs.exists(path):
        run_id = str(json.loads(fs.cat_file(path))["mlflow_parent_run_id"])
        try:
            client.update_run(run_id, status="RUNNING")
            return run_id
        except Exception:
            log.warning("study %s: parent run %s is gone; creating a new one", name, run_id)
    run = client.create_run(experiment_id(config, uri), run_name=f"{name}-study",
                            tags={STUDY_TAG: name, "jointssl.stage": "study"})
    client.log_param(run.info.run_id, "trials", str(len(grid)))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w") as f:
        f.write(json.dumps({"study": name, "mlflow_parent_run_id": run.info.run_id,
                            "trials": [t.name for t in grid]}, indent=2))
    return str(run.info.run_id)


def _child_run(uri: str, config: JobConfig, parent: str, trial: Trial, record: dict[str, Any]) -> None:
    """The trial's MLflow run under the study's; the trial's pre-training and evaluation runs under it."""
    import mlflow

    from jointssl.tracking import experiment_id

    client = mlflow.MlflowClient(uri)
    run = client.create_run(experiment_id(config, uri), run_name=trial.name,
                            tags={PARENT_TAG: parent, STUDY_TAG: study_name(config), "jointssl.trial": trial.name})
    child = run.info.run_id
    for key, value in {"objective": trial.objective, "sensors": trial.sensors, "seed": str(trial.seed),
                       "encoder": record["encoder"]}.items():
        client.log_param(child, key, value)
    for key in ("seconds", "pretrain_seconds", "evaluate_seconds"):
        if isinstance(record.get(key), (int, float)):
            client.log_metric(child, key, float(record[key]))
    for run_id in (record.get("pretrain_run_id"), record.get("evaluate_run_id")):
        if run_id:
            client.set_tag(run_id, PARENT_TAG, child)
    client.set_terminated(child, status="FINISHED")
