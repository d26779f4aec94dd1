"""Scaling: the same training job on 1 and 2 Ray workers here, and a projection to N GPU nodes from the
costs of each stage measured here.

Parallel efficiency = samples/s on 2 workers / (2 x samples/s on 1 worker), from the ingest
benchmark's jobs (:mod:`jointssl.bench.ingest`: same model, per-worker batch, steps), for the data
from object storage and for data in memory. On a 2-core machine two workers, the chip loaders and
Ray's own processes share two cores, so this measures contention as much as scaling; it is reported
as it is.

The projection does not pretend to know a GPU it has not seen: it takes the per-GPU training
throughput as an input (``gpu_samples_per_s``) and combines it with what was measured here:

- chip reads from the COGs: CPU-seconds per site (decode, resample, masks, normalisation), so
  ``cores per GPU = gpu_samples_per_s x read_cpu_s_per_site``;
- chips from the chip cache: CPU-seconds per site of :class:`jointssl.data.chip_cache.ChipCacheReader`
  reading a real cache written here (one Parquet row group per site), the same way;
- fed or not: a node's GPUs are fed by a source when the cores it needs fit in ``cores_per_node`` and,
  for the cache, its chip bytes per second fit in the node's ``network_gbps``;
- gradient all-reduce: the model's gradient bytes per step; a ring all-reduce moves
  ``2 (n - 1) / n x bytes`` per GPU, so at ``network_gbps`` it costs ``2 (n-1)/n x bytes / bandwidth``
  per step; with no overlap with the backward pass (a conservative bound) the efficiency at n GPUs is
  ``step / (step + all-reduce)`` where ``step = batch_size / gpu_samples_per_s``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np

from jointssl.config import JobConfig

R = TypeVar("R")


@dataclass(frozen=True)
class StageCosts:
    """Per-site and per-step costs measured on this machine."""

    read_cpu_s_per_site: float
    """CPU-seconds (all threads) to read one site's chips of every sensor from the COGs."""
    read_wall_s_per_site: float
    """Wall seconds per site with the loader's thread pool (reads are latency bound)."""
    cache_cpu_s_per_site: float
    """CPU-seconds to read one site's chips from the chip cache (Parquet on local disk)."""
    chip_bytes_per_site: int
    """float32 chip bytes of one site (every sensor): what the cache stores and a worker receives."""
    gradient_bytes: int
    """Bytes of gradients all-reduced per step (float32 parameters of the model)."""


@dataclass(frozen=True)
class Cluster:
    """The assumed target: nodes of ``gpus_per_node`` GPUs and ``cores_per_node`` CPU cores."""

    gpu_samples_per_s: float = 2000.0
    """Training samples/s one GPU sustains on this model when never starved (an input: no GPU here)."""
    gpus_per_node: int = 8
    cores_per_node: int = 96
    network_gbps: float = 100.0
    """Per-node network bandwidth for the all-reduce (NVLink inside a node is ignored: conservative)."""
    batch_size: int = 256
    """Per-GPU batch."""


def parallel_efficiency(ingest: dict[str, Any]) -> dict[str, float]:
    """source -> samples/s at 2 workers / (2 x samples/s at 1 worker), from ingest results."""
    by = {(r["source"], r["workers"]): r["samples_per_s"] for r in ingest["results"]}
    return {source: round(by[(source, 2)] / (2 * by[(source, 1)]), 3)
            for source in sorted({s for s, _ in by}) if by.get((source, 1)) and by.get((source, 2))}


def project(costs: StageCosts, cluster: Cluster, nodes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)) -> list[dict[str, Any]]:
    """Rows of the projection (see the module docstring), one per node count."""
    rows = []
    step_s = cluster.batch_size / cluster.gpu_samples_per_s
    bandwidth = cluster.network_gbps * 1e9 / 8
    for n in nodes:
        gpus = n * cluster.gpus_per_node
        allreduce_s = 0.0 if n == 1 else 2 * (n - 1) / n * costs.gradient_bytes / bandwidth
        efficiency = step_s / (step_s + allreduce_s)
        samples = gpus * cluster.gpu_samples_per_s * efficiency
        rows.append({
            "nodes": n, "gpus": gpus,
            "allreduce_ms_per_step": round(allreduce_s * 1e3, 2),
            "compute_efficiency": round(efficiency, 3),
            "samples_per_s": round(samples),
            "cores_needed_per_node_cogs": round(samples / n * costs.read_cpu_s_per_site, 1),
            "cores_needed_per_node_cache": round(samples / n * costs.cache_cpu_s_per_site, 1),
            "input_gbps_per_node_cache": round(samples / n * costs.chip_bytes_per_site * 8 / 1e9, 2),
        })
        row = rows[-1]
        row["fed_by_cogs"] = row["cores_needed_per_node_cogs"] <= cluster.cores_per_node
        row["fed_by_cache"] = (row["cores_needed_per_node_cache"] <= cluster.cores_per_node
                               and row["input_gbps_per_node_cache"] <= cluster.network_gbps)
    return rows


def measure_stage_costs(config: JobConfig, sites: int = 64, threads: int | None = None) -> StageCosts:
    """Chip read and cache decode costs on ``sites`` sites of the config's index, in this process."""
    from jointssl.data.dataset import ChipBatchLoader
    from jointssl.data.pipeline import load_site_table, modalities_of
    from jointssl.models.multimodal import ModalityInput, MultiModalEncoder

    modalities = modalities_of(config)
    table = load_site_table(config).head(sites)
    loader = ChipBatchLoader(modalities, reader=config.chips.reader, threads=threads)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*nodata attribute is shadowing the alpha band.*")
        loader(table.head(min(8, len(table))))  # warm: imports, GDAL drivers, transformers
        cpu, wall = time.process_time(), time.perf_counter()
        batch = loader(table)
        read_cpu, read_wall = time.process_time() - cpu, time.perf_counter() - wall
    cache_cpu = _cache_read_cpu(batch, modalities)
    chip_bytes = sum(batch[m.name][0].nbytes for m in modalities)
    model = MultiModalEncoder(config.model, [ModalityInput.of(m) for m in modalities])
    gradient_bytes = sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
    n = len(table)
    return StageCosts(read_cpu / n, read_wall / n, cache_cpu / n, int(chip_bytes), int(gradient_bytes))


def _in_fresh_process(fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)`` in a spawned process: CPU time counted there is the stage's alone (a process
    connected to Ray has Ray's own threads, whose CPU time process_time() would count too)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _cache_read_cpu(batch: dict[str, np.ndarray], modalities: list[Any]) -> float:
    """CPU seconds for :class:`ChipCacheReader` to read ``batch``'s sites back from a real chip cache
    written to a temporary folder (the best of three reads, each in batches of 64 as training reads)."""
    import tempfile

    from jointssl.data.chip_cache import ChipCacheReader, ChipCacheWriter, commit

    rows = np.arange(len(batch["site_id"]))
    with tempfile.TemporaryDirectory(prefix="jointssl-bench-cache-") as folder:
        writer = ChipCacheWriter(folder, modalities)
        for i in range(0, len(rows), 64):
            writer.write(rows[i:i + 64], {k: v[i:i + 64] for k, v in batch.items()})
        commit(folder, len(rows))
        reader = ChipCacheReader(folder, modalities)
        reader.read(rows[:8])  # warm: footers, page cache
        best = float("inf")
        for _ in range(3):
            cpu = time.process_time()
            for i in range(0, len(rows), 64):
                reader.read(rows[i:i + 64])
            best = min(best, time.process_time() - cpu)
    return best


def bench_scaling(config: JobConfig, ingest: dict[str, Any] | None = None, cluster: Cluster | None = None,
                  **ingest_options: Any) -> dict[str, Any]:
    """Parallel efficiency at 1 vs 2 workers (running the ingest jobs unless given) and the projection."""
    from jointssl.bench.ingest import bench_ingest

    if ingest is None:
        ingest = bench_ingest(config, workers=(1, 2), sources=("store", "memory"), **ingest_options)
    cluster = cluster or Cluster()
    costs = _in_fresh_process(measure_stage_costs, config)
    steps = {(r["source"], r["workers"]): r for r in ingest["results"]}
    one, two = steps.get(("memory", 1)), steps.get(("memory", 2))
    return {
        "parallel_efficiency": parallel_efficiency(ingest),
        "samples_per_s": {f"{s}@{w}": r["samples_per_s"] for (s, w), r in sorted(steps.items())},
        "step_s": {f"{s}@{w}": r["step_s"] for (s, w), r in sorted(steps.items())},
        "ddp_overhead_s_per_step_here": (round(two["step_s"] - one["step_s"], 4)
                                         if one and two and one["step_s"] and two["step_s"] else None),
        "stage_costs": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(costs).items()},
        "cluster": asdict(cluster),
        "projection": project(costs, cluster),
    }
