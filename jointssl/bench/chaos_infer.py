"""The chaos run's inference phase (steps 1-3 of :mod:`jointssl.bench.chaos`): the world in S3, a reference
run, then inference runs back to back while an injector thread applies the seeded schedule; each run's
tiles checked against the reference, each fault's recovery time measured."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jointssl.bench.chaos import (
    INFER_KINDS,
    STAC_FAULTS,
    Applied,
    ChaosSettings,
    Injector,
    check_bound,
    fault_schedule,
    kill_actions,
    restart_actions,
    stac_actions,
)

if TYPE_CHECKING:
    from jointssl.bench.chaos_proxy import StacFaultProxy
    from jointssl.bench.chaos_services import ChaosPlatform
    from jointssl.config.schema import JobConfig


def prepare(config: JobConfig, settings: ChaosSettings, tmp: Path) -> JobConfig:
    """Generate the world and its index under storage.root (S3), register a classifier of the config's
    architecture with random weights on the tracking server; ``config`` set to infer with it over ~1 km
    squares around the first ``settings.sites`` sites."""
    from jointssl import storage
    from jointssl.bench.infer import _area_file, _register_random
    from jointssl.config.schema import world_url
    from jointssl.data.index_job import run_index
    from jointssl.data.sites import read_sites
    from jointssl.world.publish import generate_world

    generate_world(config, progress=False)
    run_index(config)
    table = read_sites(storage.join(world_url(config), "sites.parquet"))
    area = _area_file(table.head(settings.sites or len(table)), tmp / "area.geojson")
    version = _register_random(config, str(config.tracking.uri))
    return dataclasses.replace(config, infer=dataclasses.replace(
        config.infer, model=f"models:/bench-classifier/{version}", area=area, bbox=None, sites=None,
        incremental=False, progress_every_s=30.0))


def chaos_inference(config: JobConfig, settings: ChaosSettings, services: ChaosPlatform, tmp: Path,
                    started: float) -> tuple[list[Applied], list[dict[str, Any]]]:
    """The reference run, then the runs under the inference faults: (faults applied, runs checked)."""
    from jointssl.bench.chaos_proxy import StacFaultProxy
    from jointssl.config.schema import world_url
    from jointssl.platform.rustac import serve_stac
    from jointssl.stac.embedded import world_catalog_files

    collections, items = world_catalog_files(world_url(config), tmp)
    with serve_stac(collections, items) as upstream, StacFaultProxy(upstream) as proxy:
        config = dataclasses.replace(config, stac=dataclasses.replace(
            config.stac, url=proxy.url, timeout_s=settings.stac_timeout_s))
        out = config.storage.url("chaos")
        expected = set(_tile_list(_complete(config, f"{out}/reference", started, settings)[0]))
        n = settings.faults - settings.train_faults
        actions = {**stac_actions(proxy, settings.stac_timeout_s + 1.0), **kill_actions(settings.seed + 1),
                   **restart_actions(services)}
        injector = Injector(fault_schedule(settings.seed, n, settings.duration_s, INFER_KINDS), actions)
        runs = _runs_under_faults(config, out, expected, injector, proxy, started, settings)
        _recoveries(injector.applied, proxy, _commit_times(f"{out}/round-"))
    return injector.applied, runs


def _runs_under_faults(config: JobConfig, out: str, expected: set[str], injector: Injector, proxy: StacFaultProxy,
                       started: float, settings: ChaosSettings) -> list[dict[str, Any]]:
    """Inference runs back to back while the injector works; each checked against the reference tiles."""
    runs: list[dict[str, Any]] = []
    injector.start()
    try:
        while not (injector.done.is_set() and proxy.pending() == 0 and runs):
            if time.monotonic() - started > settings.max_seconds:
                break
            run_url, errors = _complete(config, f"{out}/round-{len(runs):03d}", started, settings)
            ids = _tile_list(run_url)
            runs.append({"expected": len(expected), "tiles": len(ids), "duplicates": len(ids) - len(set(ids)),
                         "missing": len(expected - set(ids)), "extra": len(set(ids) - expected),
                         "errors": errors})
    finally:
        injector.stop.set()
        injector.join(timeout=60)
    return runs


def _complete(config: JobConfig, out: str, started: float, settings: ChaosSettings) -> tuple[str, list[str]]:
    """Run inference into ``out`` until it completes, re-running the same command after an error (a resume):
    (the run's folder, the errors of the attempts before)."""
    from jointssl.infer.run import run_inference

    run_config = dataclasses.replace(config, infer=dataclasses.replace(config.infer, out=out))
    errors: list[str] = []
    while True:
        try:
            return str(run_inference(run_config)["out"]), errors
        except Exception as err:  # any error of a run is reported; JointsslError is the expected kind
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            errors.append(f"{type(err).__name__}: {first}")
            check_bound(started, settings, f"the run into {out} (last error: {errors[-1]})")
            print(f"[chaos] run into {out} stopped ({errors[-1]}); re-running", flush=True)
            time.sleep(1.0)


def _tile_list(run_url: str) -> list[str]:
    import pyarrow.parquet as pq

    from jointssl import storage

    fs, path = storage.filesystem(run_url)
    tiles: list[str] = []
    for part in sorted(fs.glob(f"{path}/part-*.parquet")):
        with fs.open(part, "rb") as handle:
            tiles += [str(t) for t in pq.read_table(handle, columns=["tile_id"]).column("tile_id").to_pylist()]
    return tiles


def _commit_times(prefix: str) -> list[float]:
    """When each partition under ``prefix``* was written (wall clock; S3: LastModified, to the second)."""
    from jointssl import storage

    fs, path = storage.filesystem(prefix)
    parent = path.rsplit("/", 1)[0]
    found = fs.find(parent, detail=True)
    times = []
    for name, info in found.items():
        if name.startswith(path) and name.endswith(".parquet") and "/part-" in name:
            stamp = info.get("LastModified") or info.get("mtime")
            times.append(stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp))
    return sorted(times)


def _recoveries(applied: list[Applied], proxy: StacFaultProxy, commits: list[float]) -> None:
    """Fill each applied fault's recovery time (see :mod:`jointssl.bench.chaos`), or leave None: not recovered."""
    offset = time.time() - time.monotonic()  # the proxy records monotonic times
    for entry in applied:
        if entry.at is None:
            continue
        number = entry.fault.number
        if entry.fault.kind in STAC_FAULTS:
            if number in proxy.met:
                entry.detail = f"met by a request {proxy.met[number] + offset - entry.at:.1f} s after queued"
                if number in proxy.recovered:
                    entry.recovery_s = proxy.recovered[number] - proxy.met[number]
            else:
                entry.detail, entry.at = "queued, never met by a request", None
            continue
        after = [t for t in commits if t > (entry.back_at or entry.at)]
        if after:
            entry.recovery_s = max(0.0, after[0] - entry.at)
