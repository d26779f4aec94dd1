"""Distributed pre-training on Ray Train: a ``TorchTrainer`` whose workers read their own chips.

Driver (:func:`pretrain`): the site table of the index -> the unlabelled + train sites every worker
permutes per epoch (:mod:`jointssl.train.sampler`; each worker reads its rows itself, from the COGs or the
chip cache: :mod:`jointssl.train.worker`), the k-NN probe's labelled sites read once in memory, the MLflow
run created or continued, then ``TorchTrainer.fit`` with
``RunConfig(storage_path=<storage.root>/checkpoints, name=run.name)``, while the driver probes the
untrained encoder (:func:`probe_untrained`).

Resume (Ray 2.60, Train V2): ``TorchTrainer.restore`` / ``can_restore`` are gone in V2; instead a
new trainer with the same ``storage_path`` and ``name`` reloads the checkpoint manager's snapshot and
``ray.train.get_checkpoint()`` returns the latest checkpoint in the workers, so re-running the same
command resumes. The same mechanism restarts workers after a failure (``FailureConfig``). The driver
reads the MLflow run id from the newest checkpoint's ``meta.json`` so MLflow continues the same run; the
workers continue each epoch's permutation where the checkpoint left it, so every site of an interrupted
epoch is trained exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pandas as pd

from jointssl import storage
from jointssl.config import JobConfig
from jointssl.config.schema import ChipsConfig
from jointssl.models.multimodal import ModalityInput
from jointssl.sensors.spec import Modality
from jointssl.train.checkpoint import (
    META_FILE,
    SNAPSHOT_FILE,
    STATE_FILE,
    checkpoint_root,
    latest_meta,
    load_checkpoint_encoder,
)
from jointssl.train.loop import ProbeSet, to_tensors
from jointssl.train.worker import WorkerSetup, train_loop_per_worker

__all__ = ["META_FILE", "SNAPSHOT_FILE", "STATE_FILE", "TRAIN_SPLITS", "WorkerSetup", "checkpoint_root",
           "latest_meta", "pretrain", "probe_set_of", "train_loop_per_worker"]

log = logging.getLogger(__name__)

CAPACITY_RETRIES = 5
"""Tries to start the worker group again when the cluster has no room for every worker (a node lost and not
replaced): each waits Ray Train's worker-group start timeout (RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S, 60 s
by default), then the run stops with a resumable error instead of waiting forever (Ray's default)."""
TRAIN_SPLITS = ("unlabelled", "train")
"""Pre-training sees unlabelled and train sites; val/test sites stay unseen (val feeds the probe)."""


def probe_set_of(table: pd.DataFrame, modalities: list[Modality], chips: ChipsConfig | None = None
                 ) -> ProbeSet | None:
    """Chips of the labelled train (memory bank) and val (queries) sites, read once on the driver (evaluation
    in the same process takes them from there: :mod:`jointssl.data.labelled`)."""
    from jointssl.data.labelled import labelled_chips
    from jointssl.train.stream import StreamStats, require_learnable

    if not {"train", "val"} <= set(table["split"]):
        return None
    chips = chips or ChipsConfig()
    batches = labelled_chips(table, modalities, chips.reader, chips.threads, splits=("train", "val"))
    inputs = [ModalityInput.of(m) for m in modalities]
    train, val = batches["train"], batches["val"]
    read = StreamStats()
    for batch in (train, val):  # before any worker starts: an index of imagery this job cannot read
        read.tally(batch)
    require_learnable(read, len(modalities), "the driver read for the k-NN probe")
    if not val["labels"].any():
        return None  # no positive label among the val sites: macro AUPRC undefined
    return ProbeSet(to_tensors(train, inputs), train["labels"], to_tensors(val, inputs), val["labels"])


def probe_untrained(setup: WorkerSetup, printer: Callable[[str], None]) -> float | None:
    """The k-NN probe of the untrained encoder, the line every epoch's probe must rise above, printed and
    logged at step 0. A new run calls it on the driver while Ray Train starts the workers (~10 s with one core
    idle on 2 cores, where the worker spent ~3 s on it before its first step): ``setup.seed`` gives this
    model the weights every worker starts from."""
    from jointssl import tracking
    from jointssl.train.loop import build_model, probe

    if setup.probe_set is None:
        return None
    score = probe(build_model(setup.model, setup.inputs, setup.seed), setup.probe_set, setup.train.probe_k)
    printer(f"[pretrain] k-NN probe macro AUPRC at random init: {score:.3f}")

    def log_metric() -> None:
        import mlflow

        mlflow.MlflowClient(setup.tracking_uri).log_metric(setup.mlflow_run_id, "probe_macro_auprc", score, step=0)

    tracking.record("the untrained encoder's k-NN probe", log_metric)
    return score


def baseline_done(untrained: Future[float | None]) -> None:
    """Wait for :func:`probe_untrained`; it gives a baseline line, so its failure is a warning, never the failure
    of the run that trained meanwhile."""
    try:
        untrained.result()
    except Exception as err:
        log.warning("the untrained encoder's k-NN probe failed (training is not affected): %s: %s",
                    type(err).__name__, err)


def training_sites(config: JobConfig) -> tuple[pd.DataFrame, pd.DataFrame, list[Modality], int]:
    """``(site table, its training rows, modalities, steps per epoch)``, checked against the config."""
    from jointssl.config.load import ConfigError
    from jointssl.data.pipeline import load_site_table, modalities_of
    from jointssl.errors import JointsslError

    p = config.pretrain
    modalities = modalities_of(config)
    if len(modalities) == 1 and not p.augment.enabled:
        raise ConfigError("pretrain.augment.enabled", "single-modality pre-training (one modality in index.modalities) "
                          "takes its positive pairs from two augmentations of each chip: enable augmentations")
    table = load_site_table(config)
    train_table = table[table["split"].isin(TRAIN_SPLITS)].reset_index(drop=True)
    steps_per_epoch = (len(train_table) // p.num_workers) // p.batch_size
    if steps_per_epoch == 0:
        raise JointsslError(f"{len(train_table)} training sites give no full batch of {p.batch_size} "
                            f"on each of {p.num_workers} workers", hint="lower pretrain.batch_size")
    return table, train_table, modalities, steps_per_epoch


def check_resumable(config: JobConfig, meta: dict[str, Any] | None) -> None:
    """A checkpoint's position in an epoch's permutation holds for the worker count and batch it was taken with."""
    from jointssl.errors import JointsslError

    p = config.pretrain
    world = meta.get("world") if meta else None
    if meta and meta.get("step_in_epoch") and world is not None and world != p.num_workers:
        raise JointsslError(f"run {config.run.name!r} stopped mid-epoch with {world} workers; resuming with "
                            f"{p.num_workers} would train some sites of that epoch twice",
                            hint=f"resume with --pretrain.num_workers {world}, or use a new --run.name")


def worker_setup(config: JobConfig, run_id: str, uri: str) -> WorkerSetup:
    """Everything the workers need, from the config and the index."""
    from jointssl.config.schema import chip_cache_base
    from jointssl.data.chip_cache import cache_location
    from jointssl.train.augment import ViewSpec

    table, train_table, modalities, steps = training_sites(config)
    record = (storage.join(checkpoint_root(config), config.run.name, "trained_sites")
              if config.pretrain.record_sites else None)
    return WorkerSetup(config.model, config.pretrain, config.chips, modalities, train_table, config.run.seed, steps,
                       probe_set_of(table, modalities, config.chips), uri, run_id, [ViewSpec.of(m) for m in modalities],
                       config.run.name, cache_location(chip_cache_base(config), train_table, modalities), record)


def build_trainer(config: JobConfig, setup: WorkerSetup, queue: Any) -> Any:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    p = config.pretrain
    root = checkpoint_root(config)
    filesystem = None
    if storage.is_remote(root):
        filesystem, root = storage.arrow_filesystem(root)
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"setup": setup, "progress": queue},
        torch_config=TorchConfig(backend="nccl" if p.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=p.num_workers, use_gpu=p.use_gpu,
                                     resources_per_worker=None if p.use_gpu else {"CPU": p.cpus_per_worker}),
        run_config=RunConfig(name=config.run.name, storage_path=root, storage_filesystem=filesystem,
                             failure_config=FailureConfig(max_failures=p.max_failures,
                                                          controller_failure_limit=CAPACITY_RETRIES),  # type: ignore[call-arg]  # Train V2's FailureConfig; mypy resolves ray.air's
                             checkpoint_config=CheckpointConfig(num_to_keep=2)))


def fit_or_stop_resumably(config: JobConfig, trainer: Any) -> Any:
    """``trainer.fit()``; a run that Ray Train gives up on (workers failed more than ``max_failures`` times, or
    no room for the worker group after :data:`CAPACITY_RETRIES` waits) is one error naming the last committed
    checkpoint and how to resume from it."""
    from ray.train import TrainingFailedError

    from jointssl.compute import environment
    from jointssl.errors import JointsslError

    try:
        with environment({"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": str(config.pretrain.poll_interval_s)}):
            return trainer.fit()  # Ray Train passes the variable on to its controller and workers
    except TrainingFailedError as err:
        meta = latest_meta(config)
        kept = f"the last committed checkpoint is at step {meta['step']}" if meta else "no checkpoint was committed yet"
        cause = " ".join(line.strip() for line in str(err).strip().splitlines()[:2])[:300] or type(err).__name__
        raise JointsslError(f"pre-training run {config.run.name!r} stopped ({type(err).__name__}: {cause}); {kept}",
                            hint=f"re-run the same command (--run.name {config.run.name}) once the cluster has room "
                                 f"for {config.pretrain.num_workers} workers: it resumes from the last committed "
                                 "checkpoint") from None


def pretrain(config: JobConfig) -> dict[str, Any]:
    """Pre-train on Ray (already connected: see :func:`jointssl.compute.ray_session`); returns a summary."""
    from jointssl import tracking
    from jointssl.errors import JointsslError
    from jointssl.train.progress import ConsoleRelay

    p = config.pretrain
    meta = latest_meta(config)
    check_resumable(config, meta)
    uri = tracking.tracking_uri(config)
    run_id = tracking.start_run(config, uri, meta["mlflow_run_id"] if meta else None)
    setup = worker_setup(config, run_id, uri)
    resuming = f"; resuming at step {meta['step']}" if meta else ""
    log.info("pretrain %s: %d sites, %d steps/epoch x %d epochs, MLflow run %s%s", config.run.name,
             len(setup.table), setup.steps_per_epoch, p.epochs, run_id, resuming)
    print(f"[pretrain] {config.run.name}: {len(setup.table)} sites, {setup.steps_per_epoch} steps/epoch x {p.epochs} "
          f"epochs, global batch {p.batch_size * p.num_workers} on {p.num_workers} workers; chip cache "
          f"{config.chips.cache} at {setup.cache_url}; MLflow run {run_id} at {uri}{resuming}", flush=True)
    relay = ConsoleRelay()
    trainer = build_trainer(config, setup, relay.queue)
    started = time.perf_counter()
    with relay, ThreadPoolExecutor(1, thread_name_prefix="probe") as pool:
        untrained = pool.submit(probe_untrained, setup, relay.printer) if meta is None else None
        result = fit_or_stop_resumably(config, trainer)
        if untrained is not None:
            baseline_done(untrained)
    seconds = time.perf_counter() - started
    if result.checkpoint is None:
        raise JointsslError(f"pre-training run {config.run.name!r} ended without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        with open(os.path.join(folder, META_FILE)) as f:
            final = json.load(f)
        encoder = load_checkpoint_encoder(folder, setup.model, setup.inputs, setup.seed)
    version = tracking.finish_run(uri, run_id, encoder, p.register_model)
    return {"run": config.run.name, "mlflow_run_id": run_id, "tracking_uri": uri, "steps": final["step"],
            "epochs": final["epoch"], "resumed_from_step": meta["step"] if meta else None,
            "checkpoint": result.checkpoint.path, "model": f"{p.register_model}@current (version {version})",
            "chip_cache": setup.cache_url if config.chips.cache != "never" else None,
            "metrics": {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))},
            "seconds": round(seconds, 1)}
