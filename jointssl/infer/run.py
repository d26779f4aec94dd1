"""One inference run, from config to GeoParquet, summary, map and MLflow: the driver.

1. the area (GeoJSON, bbox or site list), the classifier pinned to a version, its sensor contract
   checked, the tile grid, and (``--incremental``) the area's watermark;
2. the run folder ``<out>/<run key>``: the key hashes everything that decides the output (area, window,
   watermark, sensors, grid, model version), so re-running the same command finds the same folder and
   plans only the cells with no committed partition (resume), and a finished run is not redone;
3. the stream, on Ray Data: cell groups -> planner actors (STAC + co-location) -> chip loader actors ->
   predictor actors (the model, once per actor: from this driver's download on its node, else from the
   registry) -> this driver, which commits each partition as soon as all of its tiles are in
   (:mod:`jointssl.infer.writer`) and prints progress;
4. when every cell is committed: summary, candidates and map, logged to MLflow; the watermark advances
   (:mod:`jointssl.infer.run_folder`, which also keeps the run folder's manifest).

Memory stays flat as the area grows: the driver holds the cell list and the partitions in flight, the
planners hold one cell's items, and Ray Data's backpressure bounds what is between the stages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
import time
from typing import TYPE_CHECKING, Any

from jointssl import storage
from jointssl.config.schema import JobConfig, world_url
from jointssl.errors import JointsslError
from jointssl.infer.area import Area, load_area
from jointssl.infer.model_ref import ModelRef, model_modalities, resolve_model
from jointssl.infer.run_folder import finish_run, open_manifest
from jointssl.infer.tiles import Cell, TileGrid, cell_of, cells_of

if TYPE_CHECKING:
    from ray.data import Dataset

    from jointssl.infer.embedding_cache import CacheSpec
    from jointssl.infer.predict import DownloadedModel
    from jointssl.infer.writer import PartitionWriter
    from jointssl.sensors.spec import Modality

log = logging.getLogger("jointssl.infer")

FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "MLFLOW_TRACKING_URI")
"""What actors on a cluster started elsewhere need from this process's environment (object storage
and tracking); a local Ray inherits it anyway."""
NODE_ID_LABEL = "ray.io/node-id"
"""The label Ray gives every node, its node id: a ``label_selector`` on it pins actors to one node."""


def run_inference(config: JobConfig) -> dict[str, Any]:
    """Run (or resume, or confirm) the inference ``config`` describes; returns the run's summary. An
    incremental run holds its area's lease (:mod:`jointssl.infer.lease`), or says who does and stops."""
    if config.infer.incremental:
        from jointssl.infer.lease import run_leased

        return run_leased(config, _run_inference)
    return _run_inference(config)


def _run_inference(config: JobConfig) -> dict[str, Any]:
    from jointssl.infer.decision import resolve_decision
    from jointssl.infer.embedding_cache import embedding_cache_url
    from jointssl.infer.watermark import read_watermark, watermark_url, watermarks_root
    from jointssl.infer.writer import PartitionWriter, RunConstants
    from jointssl.tracking import tracking_uri

    infer = config.infer
    area = load_area(infer)
    uri = tracking_uri(config)
    model = resolve_model(infer.model, uri)
    modalities = model_modalities(config, model)
    decision = resolve_decision(infer, model.operating_points, model.classes, model.expected)
    grid = TileGrid.of(modalities, infer.overlap, infer.partition_deg)
    out = infer.out or config.storage.url("inference", config.run.name)
    mark_url = watermark_url(watermarks_root(config), area.key)
    mark = read_watermark(mark_url) if infer.incremental else None
    since = mark.newest if mark else None

    identity = {"area": area.key, "window": [infer.start, infer.end], "since": since,
                "modalities": [m.name for m in modalities], "preset": config.index.preset,
                "min_coverage": config.index.min_coverage, "grid": [grid.side_m, grid.stride_m, grid.cell_deg],
                "model": model.uri, "decision": [decision.point, list(decision.thresholds), infer.ood_detections]}
    key = run_key(identity, infer.incremental)
    run_url = storage.join(out, key)
    manifest = open_manifest(config, run_url, key, identity, model, uri)
    log.info("infer %s: %s, model %s, %s%s", key, area.source, model.uri, run_url,
             f", new imagery since {since}" if since else "")

    cells = _cells(area, grid)
    if not cells:
        raise JointsslError(f"the area {area.source} covers no partition cell", hint="check the area's coordinates")
    writer = PartitionWriter(run_url, RunConstants(key, manifest["mlflow_run_id"], model.name, model.version),
                             model.classes, [m.name for m in modalities], grid.side_m, decision.thresholds,
                             infer.ood_detections)
    cache_url = embedding_cache_url(config)
    done = writer.committed()
    pending = [c for c in cells if c.id not in done]
    started = time.perf_counter()
    tiles_now, compute = 0, None
    if pending:
        log.info("infer %s: %d of %d cells to do (%d committed before)", key, len(pending), len(cells),
                 len(cells) - len(pending))
        tiles_now, compute = _stream(config, area, grid, modalities, model, uri, since, pending, writer, cache_url)
    elif manifest.get("status") == "complete":
        log.info("infer %s: already complete; nothing to do", key)
    seconds = time.perf_counter() - started

    missing = {c.id for c in cells} - writer.committed()
    if missing:
        raise JointsslError(f"{len(missing)} cells of run {key} were not written (e.g. {sorted(missing)[0]})",
                            hint="re-run the same command: it resumes with the missing cells only")
    if not infer.incremental and not _has_tiles(run_url):
        window = f"{infer.start or '..'} to {infer.end or '..'}"
        raise JointsslError(
            f"no imagery in the area {area.source}: {len(cells)} cells searched for "
            f"{', '.join(m.collection for m in modalities)} ({window}), no tile has a chip covered by any item",
            hint="check the area's coordinates (lon/lat order), infer.start/end, and the catalog "
            "(stac.url / JOINTSSL_STAC_URL, or the world under storage.root)")
    summary = finish_run(config, area, model, decision, key, run_url, manifest, uri, mark_url, since, tiles_now,
                         seconds)
    if writer.embeddings is not None:
        summary["embedding_cache"] = _finish_cache(writer, infer.embedding_cache_versions)
    return {**summary, "compute": compute} if compute else summary


def _finish_cache(writer: PartitionWriter, versions: int) -> dict[str, Any]:
    """Record the versions used, apply the retention rule; what this attempt encoded and reused."""
    from jointssl.infer.embedding_cache import apply_retention, touch_versions

    spec = writer.embeddings
    assert spec is not None
    touch_versions(spec)
    deleted = apply_retention(spec, versions)
    return {"url": spec.url, "versions": {s.sensor: s.digest for s in spec.sensors},
            "encoded": dict(writer.sensor_rows["encoded"]), "cached": dict(writer.sensor_rows["cached"]),
            "deleted_versions": len(deleted)}


def _has_tiles(run_url: str) -> bool:
    from jointssl.infer.writer import partition_urls

    return bool(partition_urls(run_url))


def run_key(identity: dict[str, Any], incremental: bool) -> str:
    """'run-<hash>' for full runs, 'inc-<watermark or start>-<hash>' for incremental ones."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    if not incremental:
        return f"run-{digest[:12]}"
    since = identity["since"]
    stamp = since[:19].replace("-", "").replace(":", "") if since else "start"
    return f"inc-{stamp}-{digest[:8]}"


def _cells(area: Area, grid: TileGrid) -> list[Cell]:
    if area.sites is None:
        return cells_of(area.geometry, grid.cell_deg)
    ids = {cell_of(lon, lat, grid.cell_deg) for lon, lat in zip(area.sites["lon"], area.sites["lat"], strict=True)}
    return sorted(ids, key=lambda c: (c.iy, c.ix))


def _stream(config: JobConfig, area: Area, grid: TileGrid, modalities: list[Modality], model: ModelRef,
            tracking: str, since: str | None, pending: list[Cell], writer: PartitionWriter, cache_url: str
            ) -> tuple[int, dict[str, Any]]:
    """Plan, read, predict and commit every pending cell: (tiles this attempt classified, where it ran)."""
    import numpy as np
    import ray

    from jointssl.compute import ray_session
    from jointssl.infer.config import cache_enabled
    from jointssl.infer.forward import ForwardSettings, freeze_after
    from jointssl.infer.plan import CellPlanner, PlanSettings
    from jointssl.infer.predict import TilePredictor
    from jointssl.infer.progress import Progress
    from jointssl.infer.resources import LOADER_CPUS, PLANNER_CPUS, actor_plan, stream_block_bytes, stream_budget_mib
    from jointssl.infer.tile_chips import TileChipLoader
    from jointssl.stac.embedded import stac_api

    infer = config.infer
    settings = PlanSettings(modalities, grid, (infer.start, infer.end), since, config.index.min_coverage,
                            config.index.page_size, infer.block_tiles)
    rows = _search_groups(area, pending, max(config.index.group_cell_deg, grid.cell_deg))
    area_wkb = None if area.sites is not None else area.geometry.wkb
    with (stac_api(config.stac.resolved_url(), world_url(config)) as stac_url, ray_session(config.ray),
          tempfile.TemporaryDirectory(prefix="jointssl-model-") as scratch):
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]  # unannotated in ray
        actors = actor_plan(config, float(resources.get("CPU", 1)), float(resources.get("GPU", 0)))
        budget = stream_budget_mib(config, modalities, actors.predictors)
        log.info("infer: %s; stream object store budget %d MiB", actors.describe(), budget)
        compute = {"ray": ray.get_runtime_context().gcs_address, "cpus": resources.get("CPU", 0),
                   "gpus": resources.get("GPU", 0), "actors": actors.describe(), "object_store_mib": budget}
        remote = _remote_args()
        downloaded = _download_classifier(model, tracking, scratch)
        if cache_enabled(infer):
            spec = _cache_spec(model, tracking, downloaded, modalities, grid, cache_url)
            writer.embeddings = dataclasses.replace(spec, new_after=since)
        channels_last = actors.device != "cpu" if infer.channels_last is None else infer.channels_last
        forward = ForwardSettings(actors.device, channels_last, infer.precision, infer.compile,  # type: ignore[arg-type]  # checked by InferConfig
                                  freeze_after(infer.freeze, actors.device, infer.compile))
        pool = ray.data.ActorPoolStrategy  # fixed-size pools: sized by actor_plan
        ds: Dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 1000)))
        ds = ds.map_batches(CellPlanner, fn_constructor_args=(stac_url, config.stac.timeout_s,
                                                              config.stac.max_retries, settings, area_wkb),
                            batch_size=1, batch_format="pandas", compute=pool(size=actors.planners),
                            num_cpus=PLANNER_CPUS, **remote, **_near_loopback(stac_url))
        ds = ds.map_batches(TileChipLoader, fn_constructor_args=(modalities, config.chips.threads, writer.embeddings),
                            batch_size=config.chips.batch_size,
                            batch_format="pandas", compute=pool(size=actors.loaders), num_cpus=LOADER_CPUS, **remote)
        ds = _whole_batches(ds, infer.batch_size)
        ds = ds.map_batches(TilePredictor, fn_constructor_args=(model.uri, tracking, [m.name for m in modalities],
                                                                model.classes, actors.device, actors.torch_threads,
                                                                downloaded, forward, writer.embeddings is not None),
                            batch_size=infer.batch_size, batch_format="numpy",
                            compute=pool(size=actors.predictors, max_tasks_in_flight_per_actor=2),
                            num_cpus=actors.predictor_cpus, num_gpus=actors.predictor_gpus or None, **remote)
        ds.context.execution_options.resource_limits = ds.context.execution_options.resource_limits.copy(
            object_store_memory=budget * 1024**2)  # this dataset's own context
        ds.context.target_max_block_size = stream_block_bytes(config, modalities)  # loader batches stream on
        progress = Progress(len(pending), infer.progress_every_s)
        seen: set[str] = set()
        try:
            for columns in ds.iter_batches(batch_size=None, batch_format="numpy"):
                cells, first = np.unique(np.asarray(columns["cell"]).astype(str), return_index=True)
                for cell, row in zip(cells, first, strict=True):
                    if cell not in seen:
                        seen.add(cell)
                        progress.saw_cell(int(columns["cell_tiles"][row]))
                tiles, committed = writer.add(columns)
                progress.update(tiles, len(committed))
        except ray.exceptions.ActorDiedError as err:
            if not (err.actor_init_failed and "CellPlanner" in str(err)):
                raise
            raise _stac_unreachable(stac_url, config.stac.max_retries, len(writer.committed())) from err
        progress.update(0, 0, force=True)
    compute["first_output_s"] = progress.first_output_s
    return progress.tiles_done, compute


def _stac_unreachable(stac_url: str, max_retries: int, committed: int) -> JointsslError:
    """The error for plan actors that could not open the STAC API (Ray's ActorDiedError is its cause)."""
    return JointsslError(
        f"the STAC API at {stac_url} failed {max_retries + 1} attempts (stac.max_retries {max_retries} + 1) to "
        "open it from a plan actor; this run stopped. Nothing committed is lost "
        f"({committed} cells committed so far are kept)",
        hint="re-run the same command once the API answers: it resumes with the cells not written (check "
        "stac.url / JOINTSSL_STAC_URL, that the server is up, and stac.max_retries / stac.timeout_s)")


def _cache_spec(model: ModelRef, tracking: str, downloaded: DownloadedModel | None, modalities: list[Modality],
                grid: TileGrid, url: str) -> CacheSpec:
    """The run's embedding cache versions, from the classifier's encoder weights: remembered from an earlier
    run of the same downloaded model, else computed from the classifier loaded once here."""
    from jointssl.classify.registry import load_classifier, load_downloaded_classifier
    from jointssl.infer.embedding_cache import cache_spec, remember_spec, remembered_spec, spec_key

    names = [m.name for m in modalities]
    shape = (grid.side_m, grid.stride_m, grid.cell_deg)
    key = spec_key(downloaded.path, names, shape) if downloaded is not None else None
    spec = remembered_spec(url, key, model.uri) if key else None
    if spec is None:
        if downloaded is not None:
            loaded = load_downloaded_classifier(downloaded.path, model.uri)
        else:
            loaded = load_classifier(model.uri, tracking)
        spec = cache_spec(loaded, names, shape, url, model.uri)
        if key:
            remember_spec(spec, key)
    log.info("infer: embedding cache %s (%s)", url, ", ".join(f"{s.sensor} {s.digest}" for s in spec.sensors))
    return spec


def _download_classifier(model: ModelRef, tracking: str, scratch: str) -> DownloadedModel | None:
    """The classifier downloaded once into ``scratch`` on this node (a pickled one is refused here), where
    predictors on this node load it without MLflow; predictors elsewhere load it from the registry."""
    import ray

    from jointssl.classify.registry import download_classifier
    from jointssl.infer.predict import DownloadedModel

    path = download_classifier(model.uri, tracking, scratch)
    return DownloadedModel(path, ray.get_runtime_context().get_node_id())


def _search_groups(area: Area, cells: list[Cell], group_deg: float) -> list[dict[str, str]]:
    """Planner input rows: the cells of each search group (index.group_cell_deg) and, in site mode,
    their candidate sites."""
    sites: dict[str, list[tuple[str, float, float]]] = {}
    if area.sites is not None:
        for sid, lon, lat in zip(area.sites["site_id"], area.sites["lon"], area.sites["lat"], strict=True):
            sites.setdefault(cell_of(lon, lat, cells[0].deg).id, []).append((str(sid), float(lon), float(lat)))
    groups: dict[tuple[int, int], list[Cell]] = {}
    for cell in cells:
        west, south, east, north = cell.bounds
        key = (math.floor(0.5 * (west + east) / group_deg), math.floor(0.5 * (south + north) / group_deg))
        groups.setdefault(key, []).append(cell)
    return [{"cells": json.dumps([c.id for c in group]),
             "sites": json.dumps({c.id: sites.get(c.id, []) for c in group}) if area.sites is not None else ""}
            for _, group in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def _whole_batches(ds: Dataset, batch_size: int) -> Dataset:
    """``ds`` in blocks of exactly ``batch_size`` rows (the last one: what is left), so that every
    predictor batch is a full one. Ray Data's default bundling hands a ``map_batches`` task blocks until
    they hold ``batch_size`` rows or more, and the task's last batch is the remainder: with the loaders'
    blocks of varying size (a planner's output is one block per grid cell), 29 of a run's 99 predictor
    batches held 2-62 tiles, each padded to a power of two of present chips per sensor and each paying a
    forward's fixed costs."""
    return ds.repartition(target_num_rows_per_block=batch_size, strict=True)


def _near_loopback(url: str) -> dict[str, Any]:
    """Planners must run on this node when the STAC API listens on its loopback only (the embedded
    catalog served by this driver): on a multi-node cluster another node's 127.0.0.1 is not this one."""
    from urllib.parse import urlparse

    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        return {}
    import ray

    return {"label_selector": {NODE_ID_LABEL: ray.get_runtime_context().get_node_id()}}


def _remote_args() -> dict[str, Any]:
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    return {"runtime_env": {"env_vars": env}} if env else {}
