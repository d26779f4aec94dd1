"""Ingest efficiency: training samples/s fed from object storage (each worker reading its own rows), over
the same training on batches already in memory.

Both sides are the same Ray Train job: the same ``TorchTrainer`` with the same number of CPU workers
(DDP over gloo, ``pretrain.cpus_per_worker`` each), the same model (the config's ``model`` section),
the same per-worker batch size, augmentations and training step (:mod:`jointssl.train.loop`), the
same number of steps. Only where a worker's batches come from differs:

- ``store``: the pre-training input pipeline itself (:mod:`jointssl.train.stream`): each worker's rows of
  the epoch's permutation, their COG windows read from ``storage.root`` (a local directory, or S3) in
  threads ahead of the step: what the first epoch reads;
- ``cache``: the same rows from the chip cache (:mod:`jointssl.data.chip_cache`, written here once in the
  same store): what every later epoch and run reads;
- ``memory``: the same rows in the same order, read into the worker's memory before the clock starts
  (from the chip cache when there is one, else the COGs), then trained on with no I/O at all. The
  batches are the ones the streaming sources train on, so the model sees the same batch shapes (a site
  without a sensor leaves that encoder a smaller batch) and only where the chips come from differs.

Per-stage CPU cost: each worker also reports the thread CPU seconds its reads took per site
(``read_cpu_ms_per_site``: COG decode for ``store``, Parquet copy for ``cache``).

Each worker times ``steps`` steady-state steps after ``warmup`` steps (model build, DDP set-up,
Ray Data start-up and the first reads are not timed); DDP makes every step wait for the slowest rank,
so rank 0's clock is the job's. Ratio = samples/s of ``store`` (or ``cache``) / samples/s of
``memory`` at the same worker count (goal >= 0.95): 1.0 means the data plane costs the training
nothing. On a small machine the loaders and the workers share the same cores, which is the cost
measured here. Each worker runs ``cores // workers`` torch threads (at least 1), so 1 worker uses every
core and 2 workers on 2 cores one each: the counts compare the data path, not oversubscription.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from jointssl import storage
from jointssl.config import JobConfig

Source = Literal["store", "cache", "memory"]
SOURCES: tuple[Source, ...] = ("store", "cache", "memory")


@dataclass(frozen=True)
class IngestRun:
    """One timed training job."""

    workers: int
    source: Source
    batch_size: int
    """Per worker; global batch = batch_size x workers."""
    warmup: int
    steps: int


@dataclass(frozen=True)
class WorkerPlan:
    """What each benchmark worker needs (sent once through ``train_loop_config``)."""

    run: IngestRun
    model: Any  # jointssl.models.config.ModelConfig
    train: Any  # jointssl.train.config.PretrainConfig
    inputs: list[Any]  # list[ModalityInput]
    views: list[Any]  # list[ViewSpec]
    seed: int
    torch_threads: int
    """Torch threads of each worker: the machine's cores shared equally by the workers."""
    table: Any  # pandas.DataFrame: the sites every source reads
    modalities: list[Any] | None = None  # list[Modality]
    cache_url: str | None = None
    depth: int = 2
    """Reads in flight ahead of the step (chips.concurrency or 2, as in pre-training)."""


def rows_needed(run: IngestRun) -> int:
    """Sites the streaming sources must hold: every rank's warm-up and timed steps, plus one batch each
    (every rank reads an equal share of the permutation)."""
    return run.workers * run.batch_size * (run.warmup + run.steps + 1)


def samples_per_s(run: IngestRun, seconds: float, steps: int) -> float:
    """Global training samples per second of ``steps`` timed steps on ``run.workers`` workers."""
    return run.workers * run.batch_size * steps / seconds if seconds > 0 else float("nan")


def ratios(results: list[dict[str, Any]]) -> dict[str, float]:
    """``'<source>/memory@<w>'`` -> samples/s of the source / samples/s in memory at ``w`` workers."""
    memory = {r["workers"]: r["samples_per_s"] for r in results if r["source"] == "memory"}
    return {f"{r['source']}/memory@{r['workers']}": round(r["samples_per_s"] / memory[r["workers"]], 3)
            for r in results if r["source"] != "memory" and memory.get(r["workers"])}


def bench_worker(setup: dict[str, Any]) -> None:
    """Ray Train worker: ``warmup`` untimed steps, then ``steps`` timed ones; reports the timings."""
    import ray.train
    import ray.train.torch
    import torch

    from jointssl.train.augment import Augmenter
    from jointssl.train.loop import build_model, build_state, to_tensors, train_step
    from jointssl.train.stream import StreamStats

    plan: WorkerPlan = setup["plan"]
    run = plan.run
    rank = ray.train.get_context().get_world_rank()
    device = ray.train.torch.get_device()
    torch.set_num_threads(plan.torch_threads)
    model = ray.train.torch.prepare_model(build_model(plan.model, plan.inputs, plan.seed))
    state = build_state(model, plan.model, plan.train)
    augment = Augmenter(plan.train.augment, plan.views, plan.seed, rank)
    total = run.warmup + run.steps
    stats = StreamStats()
    stream = _stream(plan, rank, ray.train.get_context().get_world_size(), stats)
    iterator: Iterator[dict[str, np.ndarray]] = stream
    if run.source == "memory":  # read before the clock starts; closing waits for the reads ahead
        held = list(itertools.islice(stream, total))
        stream.close()
        iterator = iter(held)
    started = waited = 0.0
    timed = 0
    for i in range(total):
        if i == run.warmup:
            started, waited = time.perf_counter(), 0.0
        before = time.perf_counter()
        raw = next(iterator, None)
        if raw is None:
            break  # the source ran dry: report the steps that were timed
        waited += time.perf_counter() - before
        train_step(state, augment(to_tensors(raw, plan.inputs, device), state.step), plan.train, total)
        timed += int(i >= run.warmup)
    seconds = time.perf_counter() - started if timed else 0.0
    metrics = {"seconds": seconds, "timed_steps": timed, "wait_s": waited,
               "read_cpu_s": stats.cpu_s, "read_sites": float(stats.sites)}
    # Ray Train V2 keeps the metrics of reports that carry a checkpoint: rank 0 attaches an empty one
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = ray.train.Checkpoint.from_directory(folder) if rank == 0 else None
        ray.train.report(metrics, checkpoint=checkpoint)


def _stream(plan: WorkerPlan, rank: int, world: int, stats: Any) -> Generator[dict[str, np.ndarray], None, None]:
    """The worker's chip batches of the first epoch's permutation, as pre-training reads them (``memory``:
    from the cache when there is one)."""
    from jointssl.data.chip_cache import ChipCacheReader
    from jointssl.train.sampler import EpochPlan
    from jointssl.train.stream import CachedChips, ChipSource, CogChips, stream_batches

    if plan.modalities is None or plan.table is None:
        raise ValueError(f"source {plan.run.source!r} streams chips: the plan needs the site table and modalities")
    source: ChipSource = (CachedChips(ChipCacheReader(plan.cache_url, plan.modalities))
                          if plan.run.source in ("cache", "memory") and plan.cache_url
                          else CogChips(plan.table, plan.modalities))
    rows = EpochPlan(plan.seed, 0, len(plan.table), world, plan.run.batch_size).rows(rank)
    return (b.chips for b in stream_batches(source, rows, plan.run.batch_size, depth=plan.depth, stats=stats))


def write_cache(config: JobConfig, table: Any, url: str) -> None:
    """Every site of ``table`` read from the COGs once and committed as a chip cache at ``url``."""
    from jointssl.data.chip_cache import ChipCacheWriter, commit
    from jointssl.data.pipeline import modalities_of
    from jointssl.errors import JointsslError
    from jointssl.train.stream import CogChips, stream_batches

    modalities = modalities_of(config)
    rows = np.arange(len(table))
    step = config.chips.batch_size
    for _ in stream_batches(CogChips(table, modalities, config.chips.reader, config.chips.threads), rows[:0], step,
                            sink=ChipCacheWriter(url, modalities), extra=rows):
        pass
    missing = commit(url, len(table))
    if missing:
        raise JointsslError(f"chip cache at {url} lacks {len(missing)} sites after writing every one")


def run_job(config: JobConfig, run: IngestRun, table: Any, cache_url: str | None = None) -> dict[str, Any]:
    """One timed TorchTrainer job (Ray already connected); returns its throughput."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from jointssl.data.pipeline import modalities_of
    from jointssl.models.multimodal import ModalityInput
    from jointssl.train.augment import ViewSpec

    modalities = modalities_of(config)
    inputs = [ModalityInput.of(m) for m in modalities]
    job = dataclasses.replace(config, pretrain=dataclasses.replace(config.pretrain, num_workers=run.workers,
                                                                   batch_size=run.batch_size))
    plan = WorkerPlan(run, config.model, job.pretrain, inputs, [ViewSpec.of(m) for m in modalities],
                      config.run.seed, max(1, (os.cpu_count() or 1) // run.workers), table, modalities, cache_url,
                      config.chips.concurrency or 2)
    folder = tempfile.mkdtemp(prefix="jointssl-bench-ingest-")
    try:
        trainer = TorchTrainer(
            bench_worker, train_loop_config={"plan": plan}, torch_config=TorchConfig(backend="gloo"),
            scaling_config=ScalingConfig(num_workers=run.workers, use_gpu=False,
                                         resources_per_worker={"CPU": job.pretrain.cpus_per_worker}),
            run_config=RunConfig(name=f"ingest-{run.source}-{run.workers}", storage_path=folder))
        began = time.perf_counter()
        result = trainer.fit()
        wall = time.perf_counter() - began
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    metrics = result.metrics or {}
    seconds, timed = float(metrics.get("seconds", 0.0)), int(metrics.get("timed_steps", 0))
    return {"workers": run.workers, "source": run.source, "batch_size": run.batch_size, "timed_steps": timed,
            "seconds": round(seconds, 3), "samples_per_s": round(samples_per_s(run, seconds, timed), 2),
            "step_s": round(seconds / timed, 4) if timed else None,
            "data_wait_s_per_step": round(float(metrics.get("wait_s", 0.0)) / timed, 4) if timed else None,
            "read_cpu_ms_per_site": (round(1000 * float(metrics["read_cpu_s"]) / float(metrics["read_sites"]), 2)
                                     if metrics.get("read_sites") else None),
            "job_wall_s": round(wall, 1)}


def bench_ingest(config: JobConfig, workers: tuple[int, ...] = (1, 2), sources: tuple[Source, ...] = SOURCES,
                 batch_size: int = 8, warmup: int = 3, steps: int = 20, repeats: int = 2,
                 memory: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every (workers, source) job ``repeats`` times, interleaved, the fastest of each counting (a busy
    neighbour on the machine slows a run, it never speeds one up), and the ratios to memory. ``memory``:
    results of the in-memory jobs from another run on this machine (the job does not depend on the
    store), instead of running them again. Ray must be connected."""
    from jointssl.data.pipeline import load_site_table, modalities_of
    from jointssl.errors import JointsslError

    biggest = IngestRun(max(workers), "store", batch_size, warmup, steps)
    table = load_site_table(config)
    table = table[[any(table[f"{m.name}_reason"][i] == "ok" for m in modalities_of(config))
                   for i in range(len(table))]].reset_index(drop=True)
    if len(table) < rows_needed(biggest):
        raise JointsslError(f"the index has {len(table)} sites with chips; {max(workers)} workers x "
                            f"{warmup + steps + 1} steps x batch {batch_size} need {rows_needed(biggest)}",
                            hint="use a larger world (world.profile demo or bench) or fewer --steps")
    table = table.head(rows_needed(biggest)).reset_index(drop=True)
    results: list[dict[str, Any]] = []
    cache_url, cache_s = None, None
    try:
        if "cache" in sources:
            cache_url = _scratch_url(config)
            began = time.perf_counter()
            write_cache(config, table, cache_url)
            cache_s = time.perf_counter() - began
        runs = [IngestRun(w, source, batch_size, warmup, steps) for w in workers for source in sources
                if not (memory and source == "memory")]
        best: dict[IngestRun, dict[str, Any]] = {}
        for _ in range(repeats):
            for run in runs:
                result = run_job(config, run, table, cache_url)
                if run not in best or result["samples_per_s"] > best[run]["samples_per_s"]:
                    best[run] = {**result, "runs": [*best.get(run, {}).get("runs", []), result["samples_per_s"]]}
                else:
                    best[run]["runs"].append(result["samples_per_s"])
        results = [best[run] for run in runs] + [r for r in memory or [] if r["workers"] in workers]
    finally:
        if cache_url:
            fs, path = storage.filesystem(cache_url)
            if fs.exists(path):
                fs.rm(path, recursive=True)
    return {"store": config.storage.root, "sites": len(table), "batch_size": batch_size, "warmup": warmup,
            "steps": steps, "repeats": repeats, "memory_from_another_run": bool(memory),
            "model": _model_summary(config),
            "chip_cache_write_s": round(cache_s, 1) if cache_s else None,
            "results": results, "ratios": ratios(results)}


def _scratch_url(config: JobConfig) -> str:
    """Where the benchmark's chip cache goes: beside the world, in the same store."""
    url = config.storage.url("bench", f"chip-cache-{os.getpid()}-{int(time.time())}")
    return url if storage.is_remote(url) else os.path.abspath(url)


def _model_summary(config: JobConfig) -> str:
    m = config.model
    return (f"{m.backbone} ({'shared trunk' if m.shared_trunk else 'one per modality'}), "
            f"objective {m.objective.name}")
