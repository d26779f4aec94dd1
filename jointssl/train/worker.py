"""The Ray Train worker of pre-training: one DDP rank's epochs over its rows of each epoch's permutation.

Per epoch: the rows (:class:`jointssl.train.sampler.EpochPlan`, from where a checkpoint left off), the chip
source (the chip cache when one is committed for this index, else the COGs, writing the cache on the way
when ``chips.cache`` asks for it: :func:`epoch_source`), the batches read ahead in threads
(:mod:`jointssl.train.stream`), the views (:mod:`jointssl.train.augment`) and the step
(:mod:`jointssl.train.loop`); a checkpoint every ``checkpoint_every`` steps and at the end of the epoch,
when the chip cache written during the epoch is also committed. Rank 0 alone talks to MLflow and, through
the driver, to the console (:mod:`jointssl.train.progress`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from jointssl import storage
from jointssl.config.schema import ChipsConfig
from jointssl.data.chip_cache import (
    ChipCacheReader,
    ChipCacheWriter,
    commit,
    is_committed,
)
from jointssl.models.config import ModelConfig
from jointssl.models.multimodal import ModalityInput
from jointssl.sensors.spec import Modality
from jointssl.train.checkpoint import STATE_FILE, load_state, report
from jointssl.train.config import PretrainConfig
from jointssl.train.loop import (
    ProbeSet,
    build_model,
    build_state,
    native_bf16,
    to_tensors,
    train_step,
    use_sync_batchnorm,
)
from jointssl.train.sampler import EpochPlan
from jointssl.train.stream import (
    CachedChips,
    ChipSource,
    CogChips,
    StreamStats,
    require_learnable,
    stream_batches,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker needs, sent once through ``train_loop_config``."""

    model: ModelConfig
    train: PretrainConfig
    chips: ChipsConfig
    modalities: list[Modality]
    table: pd.DataFrame
    """The training sites (:func:`jointssl.data.dataset.site_table` rows): what the epoch plans permute."""
    seed: int
    steps_per_epoch: int
    probe_set: ProbeSet | None
    tracking_uri: str
    mlflow_run_id: str
    views: list[Any]  # list[jointssl.train.augment.ViewSpec]: what each modality's augmentations need
    run_name: str
    cache_url: str
    """This index's chip cache folder (``<chips.cache_url>/<key>``)."""
    record_url: str | None = None
    """pretrain.record_sites: where each step's site ids go."""

    @property
    def inputs(self) -> list[ModalityInput]:
        return [ModalityInput.of(m) for m in self.modalities]


def epoch_source(s: WorkerSetup, epoch: int) -> tuple[ChipSource, ChipCacheWriter | None]:
    """The epoch's chip source and, when the epoch reads the COGs and should fill the cache, its writer.

    A resumed epoch (``consumed`` > 0) writes too: every batch it trained before the interruption was
    written as a part before it was trained (parts are named by their rows, so rewriting one is harmless),
    and the commit at the epoch's end checks that every site is in some part."""
    mode = s.chips.cache
    if mode != "never" and _agreed(is_committed(s.cache_url)):
        return CachedChips(ChipCacheReader(s.cache_url, s.modalities)), None
    cogs = CogChips(s.table, s.modalities, s.chips.reader, s.chips.threads)
    later_epoch = epoch + 1 < s.train.epochs
    writes = mode == "always" or (mode == "auto" and later_epoch)
    return cogs, ChipCacheWriter(s.cache_url, s.modalities) if writes else None


def _agreed(value: bool) -> bool:
    """Rank 0's ``value`` on every rank (all ranks must choose the same source and whether to write)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class Worker:
    """One rank's training state, clocks and outputs."""

    def __init__(self, s: WorkerSetup, channel: Any):
        import ray.train
        import ray.train.torch

        from jointssl.train.augment import Augmenter
        from jointssl.train.progress import ProgressMeter

        self.s, self.channel = s, channel
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        self.device = ray.train.torch.get_device()
        if s.train.torch_threads:
            torch.set_num_threads(s.train.torch_threads)
        self.amp = s.train.amp if s.train.amp is not None else native_bf16(self.device)
        self.state = build_state(self._model(), s.model, s.train)
        self.resumed = self._resume()
        self.total_steps = s.train.epochs * s.steps_per_epoch
        self.augment = Augmenter(s.train.augment, s.views, s.seed, self.rank)
        self.logger = _rank0_logger(s) if self.rank == 0 else None
        self.meter = (ProgressMeter(self.total_steps, s.train.batch_size * self.world, s.train.progress_every)
                      if self.rank == 0 else None)

    def _model(self) -> nn.Module:
        import ray.train.torch

        model: nn.Module = build_model(self.s.model, self.s.inputs, self.s.seed, self.s.train.channels_last)
        if self.s.train.sync_batchnorm and self.world > 1:
            model = use_sync_batchnorm(model)  # same seed: the same initial weights on every rank
        return ray.train.torch.prepare_model(model)

    def _resume(self) -> bool:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return False
        with checkpoint.as_directory() as folder:
            load_state(self.state, os.path.join(folder, STATE_FILE), self.device)
        return True

    def emit(self, line: str) -> None:
        from jointssl.train.progress import emit

        if self.rank == 0:
            emit(self.channel, line)

    def start(self) -> None:
        """Rank 0: the resume line (the untrained encoder's probe is the driver's:
        :func:`jointssl.train.trainer.probe_untrained`)."""
        st, s = self.state, self.s
        if self.resumed:
            self.emit(f"[pretrain] resuming from checkpoint at step {st.step} "
                      f"(epoch {st.epoch + 1}, step {st.step_in_epoch} of {s.steps_per_epoch})")

    def run_epoch(self) -> None:
        st, s = self.state, self.s
        plan = EpochPlan(s.seed, st.epoch, len(s.table), self.world, s.train.batch_size)
        consumed = st.step_in_epoch * plan.global_batch
        source, sink = epoch_source(s, st.epoch)
        self._announce(source, sink)
        started, losses, stats = time.perf_counter(), [], StreamStats()
        if self.meter is not None:
            self.meter.start(st.step)
        for batch in stream_batches(source, plan.rows(self.rank, consumed), s.train.batch_size,
                                    depth=s.chips.concurrency or 2, sink=sink,
                                    extra=plan.leftover(self.rank) if sink is not None else None, stats=stats):
            losses.append(self._train(batch.chips))
        require_learnable(stats, len(s.inputs), f"of pre-training epoch {st.epoch + 1} read on rank {self.rank}")
        committed = self._commit_cache() if sink is not None else None
        reads = {"chips_from_cache": float(source.name == "cache"),  # which source this epoch read
                 "chips_skipped": float(sum(stats.skipped.values()))}
        if stats.sites:
            reads["chip_read_cpu_ms_per_site"] = 1000 * stats.cpu_s / (stats.sites + stats.extra_sites)
        epoch_metrics: dict[str, float] = {"epoch": float(st.epoch + 1), **reads}
        if self.rank == 0:
            epoch_metrics.update(_end_of_epoch(self, losses, started, reads, committed, stats.skipped_text()))
        st.epoch += 1
        st.step_in_epoch = 0
        report(st, s.mlflow_run_id, self.rank, self.world, s.train.batch_size, epoch_metrics)

    def _announce(self, source: ChipSource, sink: ChipCacheWriter | None) -> None:
        where = f"the chip cache {self.s.cache_url}" if source.name == "cache" else "the COGs"
        writing = f", writing the chip cache {self.s.cache_url}" if sink is not None else ""
        self.emit(f"[pretrain] epoch {self.state.epoch + 1}/{self.s.train.epochs} reads chips from {where}{writing}")

    def _train(self, chips: dict[str, np.ndarray]) -> float:
        st, s = self.state, self.s
        tensors = to_tensors(chips, s.inputs, self.device, s.train.channels_last, s.train.pin_memory)
        views = self.augment(tensors, st.step)  # views of this step
        # one modality: its positives are two augmentations of the same chips (single-modality SSL)
        second = self.augment(tensors, st.step, view=1) if len(s.inputs) == 1 else None
        result = train_step(st, views, s.train, self.total_steps, amp=self.amp, second=second)
        self._record(chips["site_id"])  # before a checkpoint can commit the step
        metrics = {"loss": result.loss, "lr": result.lr, "grad_norm": result.grad_norm}
        if self.logger is not None and self.meter is not None:
            line = self.meter.update(st.step, result.loss, result.lr, st.epoch, s.train.epochs)
            rate = self.meter.samples_per_s()
            self.logger.log({**metrics, **({"samples_per_s": rate} if not math.isnan(rate) else {})}, st.step)
            if line is not None:
                self.emit(line)
        if st.step % s.train.checkpoint_every == 0 and st.step_in_epoch < s.steps_per_epoch:
            report(st, s.mlflow_run_id, self.rank, self.world, s.train.batch_size, metrics)
        return result.loss

    def _record(self, site_ids: np.ndarray) -> None:
        """pretrain.record_sites: this rank's sites of the step just taken (rewritten if the step is retrained)."""
        if self.s.record_url is None:
            return
        st = self.state
        url = storage.join(self.s.record_url, f"epoch_{st.epoch + 1:03d}", f"step_{st.step:06d}_rank_{self.rank}.json")
        fs, path = storage.filesystem(url)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(path, json.dumps({"pid": os.getpid(), "sites": [str(x) for x in site_ids]}).encode())

    def _commit_cache(self) -> bool:
        """After every rank wrote its parts: rank 0 commits the cache (when whole); all wait for it."""
        _barrier()
        committed = False
        if self.rank == 0:
            missing = commit(self.s.cache_url, len(self.s.table))
            committed = not missing
            if missing:
                self.emit(f"[pretrain] warning: chip cache {self.s.cache_url} lacks {len(missing)} sites; "
                          "not committed")
        _barrier()
        return committed


def _end_of_epoch(worker: Worker, losses: list[float], started: float, reads: dict[str, float],
                  committed: bool | None, skipped: str) -> dict[str, float]:
    """Rank 0: the k-NN probe, the embedding map artifact, the epoch's console summary."""
    from jointssl.train.loop import run_probe
    from jointssl.train.progress import epoch_summary

    s, st = worker.s, worker.state
    metrics: dict[str, float] = {}
    seconds = time.perf_counter() - started
    if s.probe_set is not None:
        result = run_probe(st.model, s.probe_set, s.train.probe_k)
        metrics["probe_macro_auprc"] = result.macro_auprc
        try:
            _log_embedding_map(result.queries, s, st.epoch, result.macro_auprc, worker.logger)
        except Exception as err:  # a plot must not stop a training run
            log.warning("embedding map of epoch %d not logged: %s", st.epoch + 1, err)
            worker.emit(f"[pretrain] warning: embedding map of epoch {st.epoch + 1} not logged: {err}")
    if worker.logger is not None:
        worker.logger.log({"epoch": float(st.epoch + 1), **reads, **metrics}, st.step)
    mean_loss = sum(losses) / len(losses) if losses else float("nan")
    rate = len(losses) * s.train.batch_size * worker.world / seconds if seconds > 0 else float("nan")
    worker.emit(epoch_summary(st.epoch, s.train.epochs, len(losses), seconds, mean_loss, rate,
                              metrics.get("probe_macro_auprc"), skipped))
    if committed:
        worker.emit(f"[pretrain] chip cache committed at {s.cache_url}: later epochs and runs stream it")
    return metrics


def _log_embedding_map(queries: np.ndarray, s: WorkerSetup, epoch: int, score: float, logger: Any) -> None:
    """PNG of the val sites' embeddings (PCA, coloured by class) -> <run>/embeddings/epoch_NNN.png."""
    import tempfile

    from jointssl.train.embedding_map import render

    if logger is None or s.probe_set is None or len(queries) < 2:
        return
    with tempfile.TemporaryDirectory() as folder:
        path = render(queries, s.probe_set.query_labels, os.path.join(folder, f"epoch_{epoch + 1:03d}.png"),
                      title=f"{s.run_name}: val sites after epoch {epoch + 1} (k-NN macro AUPRC {score:.3f})")
        logger.log_artifact(path, "embeddings")


def _rank0_logger(s: WorkerSetup) -> Any:
    from jointssl.tracking import MetricLogger

    return MetricLogger(s.tracking_uri, s.mlflow_run_id)


def train_loop_per_worker(setup: dict[str, Any]) -> None:
    """Ray Train worker body (see the module docstring)."""
    worker = Worker(setup["setup"], setup.get("progress"))
    worker.start()
    try:
        while worker.state.epoch < worker.s.train.epochs:
            worker.run_epoch()
    finally:
        if worker.logger is not None:  # send what an MLflow outage held back, or count it lost
            worker.logger.close()
