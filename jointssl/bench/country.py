"""What classifying a whole country costs: measured per-stage costs, projected to the contiguous US.

**Measured** (in this process, on this machine, one torch thread, over the tiles of ~1 km squares around
the world's first ``sites`` sites, planned exactly as the stream's planners plan them):

- planning: STAC searches + co-location, CPU ms per tile (:func:`jointssl.bench.infer.plan_in_process`);
- reads, per sensor: the block-reading chip loader alone on that sensor, CPU ms per tile and bytes read
  per tile (``rchar`` of /proc/self/io: every byte the reads pulled, local file or socket);
- encode, per sensor: the inference forward's encoder on the present chips (:func:`jointssl.infer.forward`),
  CPU ms per tile, and its FLOPs per chip (``torch.utils.flop_counter``: what a GPU would run);
- head: fusion + head + calibration on the embeddings, CPU ms per tile;
- write: the partition table and its Parquet bytes, CPU ms per tile and bytes per tile;
- embedding cache: committing and reading back a sensor's rows, CPU ms per tile per sensor.

**Projected** (arithmetic, every assumption in the output): tiles = area / stride^2 of the config's tile
grid; CPU-hours per stage = tiles x ms per tile; GPU-hours = tiles x FLOPs per tile / the stated GPU
rate; wall time on N nodes = the slowest of CPU (stages streamed, all cores busy), GPUs and the network
(bytes read / NIC). A nightly pass: the share of tiles with a new Sentinel-2 (1 / revisit days) or
Sentinel-1 scene; triggered tiles pay planning, head, write and cache reads, and each new scene pays its
read, encode and cache write (NAIP: cache read only); without the cache a triggered tile pays a full tile.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from jointssl import storage
from jointssl.config.schema import JobConfig, world_url

CONUS_KM2 = 8.1e6
"""Contiguous US land and water area (about 8.08 million km^2, US Census Bureau)."""
NODES = (1, 4, 16)
GPUS_PER_NODE = 8
CORES_PER_NODE = 96
NIC_GBPS = 100.0
"""Network bandwidth per node to object storage (Gb/s), assumed."""
GPU_TFLOPS = 20.0
"""Sustained encoder throughput per GPU, assumed (no GPU was lent to this measurement): an order-of-magnitude
figure for ResNets in PyTorch eager float32 / TF32 on an A100/H100 class GPU (a ResNet-50, 8.2 GFLOP per
224 px image, at ~2,500 images/s), far below the tensor-core peaks (~500-1,000 TFLOP/s); small chips keep
convolutions further from peak, bf16 and compilation closer. Override: --gpu-tflops."""
REVISIT_DAYS = {"s2": 5.0, "s1": 6.0}
"""Nights between new scenes of a tile (Sentinel-2 5 days with two satellites; Sentinel-1 6 days with
S1A + S1C, 12 with one); NAIP: every 2-3 years, ~0 per night."""


def bench_country(config: JobConfig, sites: int = 160, max_tiles: int = 256, gpu_tflops: float = GPU_TFLOPS,
                  area_km2: float = CONUS_KM2) -> dict[str, Any]:
    """Measure the stages, project them to ``area_km2``; results with the Markdown tables."""
    import platform

    from jointssl.bench.projection import Assumptions, project, render, stage_rows

    load = os.getloadavg()
    stages = measure_stages(config, sites, max_tiles)
    assumptions = Assumptions(area_km2, stages["side_m"], stages["stride_m"], gpu_tflops, NODES, GPUS_PER_NODE,
                              CORES_PER_NODE, NIC_GBPS, dict(REVISIT_DAYS))
    result = project(stages, assumptions)
    return {"stages": stages, "projection": result,
            "markdown": "\n".join(stage_rows(stages)) + "\n\n" + render(result, stages),
            "machine": f"{platform.node()} ({os.cpu_count()} CPUs)",
            "load_average_before_after": [list(load), list(os.getloadavg())]}


def measure_stages(config: JobConfig, sites: int = 160, max_tiles: int = 256) -> dict[str, Any]:
    """Per-stage CPU ms per tile, bytes per tile and FLOPs per chip (see the module docstring)."""
    import torch

    from jointssl.bench.infer import plan_in_process
    from jointssl.bench.peers import area_file, register_random_classifier
    from jointssl.classify.registry import load_classifier
    from jointssl.data.sites import read_sites
    from jointssl.infer.forward import ForwardSettings, prepare
    from jointssl.infer.tile_chips import TileChipLoader

    table = read_sites(storage.join(world_url(config), "sites.parquet")).head(sites)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="jointssl-bench-country-") as folder:
            tmp = Path(folder)
            uri = f"sqlite:///{tmp}/mlflow.db"
            model_uri = register_random_classifier(config, uri)
            config = dataclasses.replace(
                config, tracking=dataclasses.replace(config.tracking, uri=uri),
                infer=dataclasses.replace(config.infer, model=model_uri, area=area_file(table, tmp / "a.geojson"),
                                          bbox=None, sites=None))
            planning_s, (ref, modalities, tiles) = _cpu(lambda: plan_in_process(config, max_tiles))
            n = len(tiles)
            settings = ForwardSettings("cpu", bool(config.infer.channels_last), "fp32")
            model = prepare(load_classifier(ref.uri, uri), settings)
            from jointssl.infer.tiles import TileGrid

            grid = TileGrid.of(modalities, config.infer.overlap, config.infer.partition_deg)
            out: dict[str, Any] = {"tiles": n, "planning_ms": 1000 * planning_s / n, "sensors": {},
                                   "side_m": grid.side_m, "stride_m": grid.stride_m}
            chips: dict[str, np.ndarray] = {}
            present: dict[str, np.ndarray] = {}
            for m in modalities:
                before = _rchar()
                read_s, batch = _cpu(partial(TileChipLoader([m], config.chips.threads), tiles))
                bytes_read = _rchar() - before
                chips[m.name], present[m.name] = batch[m.name], np.asarray(batch[f"{m.name}_present"], bool)
                out["sensors"][m.name] = {"read_ms": 1000 * read_s / n, "bytes_per_tile": bytes_read / n,
                                          "present": float(present[m.name].mean()),
                                          "flops_per_chip": _flops(model, m.name, chips[m.name][:1])}

            def cached(encode: str | None) -> dict[str, Any]:
                """Every sensor but ``encode`` taken as cached (zeros: the cost is what is measured)."""
                return {k: (present[k] & (k != encode), np.zeros((n, _dim(model, k)), np.float32),
                            np.zeros((n, 2 * int(model.encoder.inputs[k].bands)))) for k in present}

            head_s, _ = _cpu(lambda: _batched(model, settings, chips, present, cached(None), config.infer.batch_size))
            out["head_ms"] = 1000 * head_s / n
            for m in modalities:  # one sensor's encoder at a time, less the head measured above
                encode_s, _ = _cpu(partial(_batched, model, settings, chips, present, cached(m.name),
                                           config.infer.batch_size))
                out["sensors"][m.name]["encode_ms"] = max(0.0, 1000 * encode_s / n - out["head_ms"])
            out.update(_write_and_cache(config, ref, modalities, model, settings, tiles, chips, present, tmp))
            out["model"] = f"{config.model.backbone}, random weights"
    finally:
        torch.set_num_threads(threads)
    return out


def _write_and_cache(config: JobConfig, ref: Any, modalities: list[Any], model: Any, settings: Any, tiles: Any,
                     chips: dict[str, np.ndarray], present: dict[str, np.ndarray], tmp: Path) -> dict[str, Any]:
    """CPU ms per tile of writing the partitions, and of committing / reading the embedding cache per sensor."""
    from jointssl.infer.embedding_cache import CacheReader, cache_spec, item_key, tile_key
    from jointssl.infer.forward import forward
    from jointssl.infer.predict import cache_columns, predictions
    from jointssl.infer.tile_chips import TileChipLoader
    from jointssl.infer.tiles import TileGrid
    from jointssl.infer.writer import PartitionWriter, RunConstants, parquet_bytes

    n = len(tiles)
    names = [m.name for m in modalities]
    grid = TileGrid.of(modalities, config.infer.overlap, config.infer.partition_deg)
    spec = cache_spec(model, names, (grid.side_m, grid.stride_m, grid.cell_deg), str(tmp / "cache"), ref.uri)
    batch = TileChipLoader(modalities, config.chips.threads, spec)(tiles)
    flags = np.stack([np.asarray(batch[f"{m}_present"], bool) for m in names], axis=1)  # [N M]
    some = np.flatnonzero(flags.any(axis=1))
    result = forward(model, settings, {m: batch[m][some] for m in names},
                     {m: flags[some, k] for k, m in enumerate(names)})
    probs = np.full((n, len(model.classes)), np.nan, np.float32)  # [N K]
    probs[some] = result.probs
    rows = predictions(batch, probs, flags, names, model.classes)
    rows.update(cache_columns(batch, names, some, result))
    writer = PartitionWriter(str(tmp / "run"), RunConstants("r", "i", "m", "1"), model.classes, names,
                             grid.side_m, 0.5)
    sizes: list[int] = []
    write_s, _ = _cpu(lambda: sizes.append(len(parquet_bytes(*writer.table(rows)))))
    cells = np.asarray(rows["cell"]).astype(str)
    out: dict[str, Any] = {"write_ms": 1000 * write_s / n, "write_bytes_per_tile": sizes[0] / n}
    for version in spec.sensors:
        one = dataclasses.replace(spec, sensors=(version,))
        parts = [(str(c), {k: np.asarray(v)[cells == c] for k, v in rows.items()}) for c in np.unique(cells)]
        commit_s, _ = _cpu(partial(_commit_all, one, parts))
        keys = [item_key(json.loads(t)) if isinstance(t, str) and t else "" for t in tiles[f"{version.sensor}_item"]]
        lookups = [(str(c), tile_key(str(t), float(x), float(y)), k) for c, t, x, y, k in
                   zip(tiles["cell"], tiles["tile_id"], tiles["lon"], tiles["lat"], keys, strict=True)]
        read_s, _ = _cpu(partial(_lookup_all, CacheReader(one), version.sensor, lookups))
        size = sum(p.stat().st_size for p in (tmp / "cache" / version.folder).glob("*.parquet"))
        out["sensors_cache"] = {**out.get("sensors_cache", {}), version.sensor: {
            "commit_ms": 1000 * commit_s / n, "read_ms": 1000 * read_s / n, "bytes_per_tile": size / n}}
    return out


def _commit_all(spec: Any, parts: list[tuple[str, dict[str, np.ndarray]]]) -> None:
    from jointssl.infer.embedding_cache import commit_cell

    for cell, rows in parts:
        commit_cell(spec, cell, rows)


def _lookup_all(reader: Any, sensor: str, lookups: list[tuple[str, str, str]]) -> None:
    for cell, tile, item in lookups:
        reader.lookup(sensor, cell, tile, item)


def _batched(model: Any, settings: Any, chips: dict[str, np.ndarray], present: dict[str, np.ndarray],
             cached: dict[str, Any], batch_size: int) -> None:
    from jointssl.infer.forward import forward

    n = len(next(iter(present.values())))
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size)
        forward(model, settings, {k: v[rows] for k, v in chips.items()}, {k: v[rows] for k, v in present.items()},
                {k: (h[rows], e[rows], s[rows]) for k, (h, e, s) in cached.items()})


def _dim(model: Any, m: str) -> int:
    return int(model.encoder.encoders[m].out_dim)


def _flops(model: Any, m: str, chip: np.ndarray) -> float:
    """FLOPs of one chip's forward through sensor ``m``'s encoder (2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model.encoder.encoders[m](torch.from_numpy(np.ascontiguousarray(chip)))
    return float(counter.get_total_flops())


def _cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(CPU seconds of this process, every thread, while ``fn`` ran; its result)."""
    started = time.process_time()
    result = fn()
    return time.process_time() - started, result


def _rchar() -> int:
    with open(f"/proc/{os.getpid()}/io") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("rchar"))
