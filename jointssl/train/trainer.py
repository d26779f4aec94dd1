"""Distributed pre-training on Ray Train: a ``TorchTrainer`` over the streaming chip dataset.

Driver (:func:`pretrain`): site table -> Ray Dataset of chips of the unlabelled + train sites
(``datasets={"train": ds}``, one streaming shard per worker), the k-NN probe's labelled sites read
once in memory, the MLflow run created or continued, then ``TorchTrainer.fit`` with
``RunConfig(storage_path=<storage.root>/checkpoints, name=run.name)``.

Resume (Ray 2.60, Train V2): ``TorchTrainer.restore`` / ``can_restore`` are gone in V2; instead a
new trainer with the same ``storage_path`` and ``name`` reloads the checkpoint manager's snapshot and
``ray.train.get_checkpoint()`` returns the latest checkpoint in the workers, so re-running the same
command resumes. The same mechanism restarts workers after a failure (``FailureConfig``). The driver
reads the MLflow run id from the newest checkpoint's ``meta.json`` so MLflow continues the same run.

Worker (:func:`train_loop_per_worker`): DDP (gloo on CPU, NCCL on GPU; optionally SyncBatchNorm),
the views of each step (:mod:`jointssl.train.augment`), the step of :mod:`jointssl.train.loop`, a
checkpoint (model, optimizer, target, epoch, step, step within the epoch, MLflow run id) every
``checkpoint_every`` steps and at the end of each epoch. Rank 0 alone talks to MLflow (metrics, the
embedding map PNG each epoch) and to the console, through the driver (:mod:`jointssl.train.progress`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import torch

from jointssl import storage
from jointssl.config import JobConfig
from jointssl.models.config import ModelConfig
from jointssl.models.multimodal import ModalityInput
from jointssl.train.config import PretrainConfig
from jointssl.train.loop import (ProbeSet, TrainState, build_model, build_state, run_probe, to_tensors, train_step,
                                 unwrap, use_sync_batchnorm)

log = logging.getLogger(__name__)

TRAIN_SPLITS = ("unlabelled", "train")
"""Pre-training sees unlabelled and train sites; val/test sites stay unseen (val feeds the probe)."""
STATE_FILE = "state.pt"
META_FILE = "meta.json"
SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"
"""Ray Train V2's record of the committed checkpoints, in the run's storage folder."""


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker needs, sent once through ``train_loop_config``."""

    model: ModelConfig
    train: PretrainConfig
    modalities: list[ModalityInput]
    seed: int
    steps_per_epoch: int
    probe_set: ProbeSet | None
    tracking_uri: str
    mlflow_run_id: str
    views: list  # list[jointssl.train.augment.ViewSpec]: what each modality's augmentations need
    run_name: str


def checkpoint_root(config: JobConfig) -> str:
    """<storage.root>/checkpoints as Ray wants it: absolute for a local root."""
    url = config.storage.url("checkpoints")
    return url if storage.is_remote(url) else os.path.abspath(url)


def latest_meta(config: JobConfig) -> dict[str, Any] | None:
    """meta.json of the checkpoint a re-run resumes from, or None for a new run.

    That is the latest checkpoint Ray Train committed (its snapshot file), not simply the newest folder:
    a worker writes its checkpoint before the controller registers it, so a run killed in between
    leaves a newer folder that resuming ignores. Without a snapshot: the highest step on storage.
    """
    fs, path = storage.filesystem(storage.join(checkpoint_root(config), config.run.name))
    try:
        snapshot = json.loads(fs.cat_file(f"{path}/{SNAPSHOT_FILE}"))
        name = snapshot["latest_checkpoint_result"]["checkpoint_dir_name"]
        return json.loads(fs.cat_file(f"{path}/{name}/{META_FILE}"))
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        pass
    metas = []
    for file in fs.glob(f"{path}/checkpoint_*/{META_FILE}"):
        metas.append(json.loads(fs.cat_file(file)))
    return max(metas, key=lambda m: m["step"]) if metas else None


def train_loop_per_worker(setup: dict[str, Any]) -> None:
    """Ray Train worker body (see the module docstring)."""
    import ray.train
    import ray.train.torch

    from jointssl.train.augment import Augmenter
    from jointssl.train.progress import ProgressMeter, emit

    s: WorkerSetup = setup["setup"]
    channel = setup.get("progress")  # rank 0 -> driver console
    rank = ray.train.get_context().get_world_rank()
    world = ray.train.get_context().get_world_size()
    device = ray.train.torch.get_device()
    amp = s.train.use_gpu and device.type == "cuda"
    model = build_model(s.model, s.modalities, s.seed)  # same seed: same initial weights on every rank
    if s.train.sync_batchnorm and world > 1:
        model = use_sync_batchnorm(model)
    model = ray.train.torch.prepare_model(model)
    state = build_state(model, s.model, s.train)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            _load_state(state, os.path.join(folder, STATE_FILE), device)
    total_steps = s.train.epochs * s.steps_per_epoch
    augment = Augmenter(s.train.augment, s.views, s.seed, rank)
    logger = _rank0_logger(s) if rank == 0 else None
    meter = ProgressMeter(total_steps, s.train.batch_size * world, s.train.progress_every) if rank == 0 else None
    if rank == 0 and checkpoint is not None:
        emit(channel, f"[pretrain] resuming from checkpoint at step {state.step} "
                      f"(epoch {state.epoch + 1}, step {state.step_in_epoch} of {s.steps_per_epoch})")
    if rank == 0 and state.step == 0 and s.probe_set is not None:
        # the probe of the untrained (random-init) encoder: the line the epochs' probes must rise above
        initial = run_probe(model, s.probe_set, s.train.probe_k).macro_auprc
        if logger is not None:
            logger.log({"probe_macro_auprc": initial}, 0)
        emit(channel, f"[pretrain] k-NN probe macro AUPRC at random init: {initial:.3f}")
    shard = ray.train.get_dataset_shard("train")
    while state.epoch < s.train.epochs:
        started, losses, skip = time.perf_counter(), [], state.step_in_epoch
        if meter is not None:
            meter.start(state.step)
        batches = shard.iter_torch_batches(batch_size=s.train.batch_size, drop_last=True,
                                           local_shuffle_buffer_size=4 * s.train.batch_size,
                                           local_shuffle_seed=s.seed + state.epoch)
        for i, raw in enumerate(batches):
            if i < skip or state.step_in_epoch >= s.steps_per_epoch:
                continue  # a resumed epoch: these batches were trained on before the checkpoint
            chips = to_tensors(raw, s.modalities, device)
            batch = augment(chips, state.step)  # views of this step
            # one modality: its positives are two augmentations of the same chips (single-modality SSL)
            second = augment(chips, state.step, view=1) if len(s.modalities) == 1 else None
            result = train_step(state, batch, s.train, total_steps, amp=amp, second=second)
            losses.append(result.loss)
            metrics = {"loss": result.loss, "lr": result.lr, "grad_norm": result.grad_norm}
            if logger is not None and meter is not None:
                line = meter.update(state.step, result.loss, result.lr, state.epoch, s.train.epochs)
                rate = meter.samples_per_s()
                logger.log({**metrics, **({"samples_per_s": rate} if rate == rate else {})}, state.step)
                if line is not None:
                    emit(channel, line)
            if state.step % s.train.checkpoint_every == 0 and state.step_in_epoch < s.steps_per_epoch:
                _report(state, s, rank, metrics)
        epoch_metrics: dict[str, float] = {"epoch": float(state.epoch + 1)}
        if rank == 0:
            epoch_metrics.update(_end_of_epoch(model, s, state, logger, channel, losses, started, world))
        state.epoch += 1
        state.step_in_epoch = 0
        _report(state, s, rank, epoch_metrics)


def _end_of_epoch(model, s: WorkerSetup, state: TrainState, logger, channel, losses: list[float],
                  started: float, world: int) -> dict[str, float]:
    """Rank 0: the k-NN probe, the embedding map artifact, the epoch's console summary."""
    from jointssl.train.progress import emit, epoch_summary

    metrics: dict[str, float] = {}
    seconds = time.perf_counter() - started
    if s.probe_set is not None:
        result = run_probe(model, s.probe_set, s.train.probe_k)
        metrics["probe_macro_auprc"] = result.macro_auprc
        try:
            _log_embedding_map(result.queries, s, state.epoch, result.macro_auprc, logger)
        except Exception as err:  # noqa: BLE001 - a plot must not stop a training run
            log.warning("embedding map of epoch %d not logged: %s", state.epoch + 1, err)
            emit(channel, f"[pretrain] warning: embedding map of epoch {state.epoch + 1} not logged: {err}")
    if logger is not None:
        logger.log({"epoch": float(state.epoch + 1), **metrics}, state.step)
    mean_loss = sum(losses) / len(losses) if losses else float("nan")
    rate = len(losses) * s.train.batch_size * world / seconds if seconds > 0 else float("nan")
    emit(channel, epoch_summary(state.epoch, s.train.epochs, len(losses), seconds, mean_loss, rate,
                                metrics.get("probe_macro_auprc")))
    return metrics


def _log_embedding_map(queries, s: WorkerSetup, epoch: int, score: float, logger) -> None:
    """PNG of the val sites' embeddings (PCA, coloured by class) -> <run>/embeddings/epoch_NNN.png."""
    from jointssl.train.embedding_map import render

    if logger is None or s.probe_set is None or len(queries) < 2:
        return
    with tempfile.TemporaryDirectory() as folder:
        path = render(queries, s.probe_set.query_labels, os.path.join(folder, f"epoch_{epoch + 1:03d}.png"),
                      title=f"{s.run_name}: val sites after epoch {epoch + 1} (k-NN macro AUPRC {score:.3f})")
        logger.log_artifact(path, "embeddings")


def _rank0_logger(s: WorkerSetup):
    from jointssl.train.tracking import MetricLogger

    return MetricLogger(s.tracking_uri, s.mlflow_run_id)


def _report(state: TrainState, s: WorkerSetup, rank: int, metrics: dict[str, float]) -> None:
    """Every rank reports (Ray Train requires it); only rank 0 attaches the checkpoint files."""
    import ray.train

    meta = {"epoch": state.epoch, "step": state.step, "step_in_epoch": state.step_in_epoch,
            "mlflow_run_id": s.mlflow_run_id}
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if rank == 0:
            torch.save({"model": unwrap(state.model).state_dict(), "optimizer": state.optimizer.state_dict(),
                        "target": state.target.state_dict() if state.target is not None else None, **meta},
                       os.path.join(folder, STATE_FILE))
            with open(os.path.join(folder, META_FILE), "w") as f:
                json.dump(meta, f)
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report({**metrics, "step": state.step}, checkpoint=checkpoint)


def _load_state(state: TrainState, path: str, device: torch.device) -> None:
    saved = torch.load(path, map_location=device, weights_only=False)
    unwrap(state.model).load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    if state.target is not None and saved.get("target") is not None:
        state.target.load_state_dict(saved["target"])
    state.epoch, state.step, state.step_in_epoch = saved["epoch"], saved["step"], saved["step_in_epoch"]


def load_encoder(checkpoint_dir: str, setup: WorkerSetup):
    """The plain encoder with a checkpoint's weights (for export)."""
    model = build_model(setup.model, setup.modalities, setup.seed)
    saved = torch.load(os.path.join(checkpoint_dir, STATE_FILE), map_location="cpu", weights_only=False)
    model.load_state_dict(saved["model"])
    return model.eval()


LOADER_CPUS = 0.5
"""CPUs a chip-loading actor reserves: reads are latency bound (threads), so half a core keeps up."""


def loader_count(config: JobConfig) -> int:
    """Chip loaders that leave at least one whole CPU free beside the Train workers.

    Ray Data's own tasks (repartition, output splitting) each need one CPU; if loaders and workers
    reserve every CPU those tasks never run and training waits on data forever (measured on 2 cores).
    """
    import ray

    from jointssl.errors import JointsslError

    p = config.pretrain
    total = float(ray.cluster_resources().get("CPU", 1))
    free = total - (0.0 if p.use_gpu else p.num_workers * p.cpus_per_worker)
    loaders = config.chips.concurrency or max(1, int((free - 1.0) / LOADER_CPUS))
    if free - loaders * LOADER_CPUS < 1.0:
        raise JointsslError(
            f"{total:g} CPUs cannot hold {p.num_workers} workers x {p.cpus_per_worker:g} CPU, {loaders} chip "
            f"loaders x {LOADER_CPUS:g} CPU and one free CPU for Ray Data tasks (training would deadlock)",
            hint="lower pretrain.cpus_per_worker or chips.concurrency, or raise ray.num_cpus")
    return loaders


def probe_set_of(table, modalities) -> ProbeSet | None:
    """Chips of the labelled train (memory bank) and val (queries) sites, read once on the driver."""
    from jointssl.data.dataset import ChipBatchLoader

    inputs = [ModalityInput.of(m) for m in modalities]
    parts = {}
    for split in ("train", "val"):
        rows = table[table["split"] == split].reset_index(drop=True)
        if rows.empty:
            return None
        batch = ChipBatchLoader(modalities)(rows)
        parts[split] = (to_tensors(batch, inputs), batch["labels"])
    if not parts["val"][1].any():
        return None  # no positive label among the val sites: macro AUPRC undefined
    return ProbeSet(parts["train"][0], parts["train"][1], parts["val"][0], parts["val"][1])


def pretrain(config: JobConfig) -> dict[str, Any]:
    """Pre-train on Ray (already connected: see :func:`jointssl.compute.ray_session`); returns a summary."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from jointssl.data.dataset import chip_dataset
    from jointssl.config.load import ConfigError
    from jointssl.data.pipeline import load_site_table, modalities_of
    from jointssl.errors import JointsslError
    from jointssl.train import tracking
    from jointssl.train.augment import ViewSpec
    from jointssl.train.progress import ConsoleRelay

    p = config.pretrain
    modalities = modalities_of(config)
    inputs = [ModalityInput.of(m) for m in modalities]
    table = load_site_table(config)
    if len(modalities) == 1 and not p.augment.enabled:
        raise ConfigError("pretrain.augment.enabled", "single-modality pre-training (one modality in index.modalities) "
                          "takes its positive pairs from two augmentations of each chip: enable augmentations")
    train_table = table[table["split"].isin(TRAIN_SPLITS)].reset_index(drop=True)
    steps_per_epoch = (len(train_table) // p.num_workers) // p.batch_size
    if steps_per_epoch == 0:
        raise JointsslError(f"{len(train_table)} training sites give no full batch of {p.batch_size} "
                            f"on each of {p.num_workers} workers", hint="lower pretrain.batch_size")
    columns = [c for m in inputs for c in (m.name, f"{m.name}_present")]
    loaders = loader_count(config)
    ds = chip_dataset(train_table, modalities, reader=config.chips.reader, batch_size=config.chips.batch_size,
                      concurrency=loaders, num_cpus=LOADER_CPUS, threads=config.chips.threads).select_columns(columns)
    uri = tracking.tracking_uri(config)
    meta = latest_meta(config)
    run_id = tracking.start_run(config, uri, meta["mlflow_run_id"] if meta else None)
    log.info("pretrain %s: %d sites, %d steps/epoch x %d epochs, MLflow run %s%s", config.run.name,
             len(train_table), steps_per_epoch, p.epochs, run_id,
             f" (resuming at step {meta['step']})" if meta else "")
    setup = WorkerSetup(config.model, p, inputs, config.run.seed, steps_per_epoch,
                        probe_set_of(table, modalities), uri, run_id, [ViewSpec.of(m) for m in modalities],
                        config.run.name)
    root = checkpoint_root(config)
    filesystem = None
    if storage.is_remote(root):
        filesystem, root = storage.arrow_filesystem(root)
    relay = ConsoleRelay()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"setup": setup, "progress": relay.queue},
        torch_config=TorchConfig(backend="nccl" if p.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=p.num_workers, use_gpu=p.use_gpu,
                                     resources_per_worker=None if p.use_gpu else {"CPU": p.cpus_per_worker}),
        run_config=RunConfig(name=config.run.name, storage_path=root, storage_filesystem=filesystem,
                             failure_config=FailureConfig(max_failures=p.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
        datasets={"train": ds},
    )
    print(f"[pretrain] {config.run.name}: {len(train_table)} sites, {steps_per_epoch} steps/epoch x {p.epochs} "
          f"epochs, global batch {p.batch_size * p.num_workers} on {p.num_workers} workers; MLflow run {run_id} "
          f"at {uri}" + (f"; resuming at step {meta['step']}" if meta else ""), flush=True)
    started = time.perf_counter()
    with relay:
        result = trainer.fit()
    seconds = time.perf_counter() - started
    if result.checkpoint is None:
        raise JointsslError(f"pre-training run {config.run.name!r} ended without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        final = json.loads(open(os.path.join(folder, META_FILE)).read())
        encoder = load_encoder(folder, setup)
    version = tracking.finish_run(uri, run_id, encoder, p.register_model)
    return {"run": config.run.name, "mlflow_run_id": run_id, "tracking_uri": uri, "steps": final["step"],
            "epochs": final["epoch"], "resumed_from_step": meta["step"] if meta else None,
            "checkpoint": result.checkpoint.path, "model": f"{p.register_model}@current (version {version})",
            "metrics": {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))},
            "seconds": round(seconds, 1)}
