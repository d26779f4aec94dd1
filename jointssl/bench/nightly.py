"""The nightly pass: what an ``--incremental`` run costs after new Sentinel-2 and Sentinel-1 scenes
(NAIP unchanged), against a full pass over the same area.

All runs are the real ``jointssl infer`` (:func:`jointssl.infer.run.run_inference`) on one local Ray
(warmed up by a first pass, as a long-lived cluster is), over ~1 km squares around the world's first
``sites`` sites, with config.model's architecture and random weights (throughput does not depend on the
weights). The world's catalog is copied, so the world itself is not changed:

1. **full**: a full pass, embedding cache off (what every night cost before the cache);
2. **first incremental**: the area's first ``--incremental`` run (no watermark: every tile), which fills
   the embedding cache (``infer.embedding_cache: auto``);
3. new scenes, acquired after everything: a copy of the first Sentinel-2 item of every other site and of
   the first Sentinel-1 item of the others (``--nightly-both``: both sensors on every site, the worst case
   for the cache). Sentinel-2 revisits every 5 days and Sentinel-1 every 6-12, so a night rarely brings
   both to one tile; every site gets one, so (nearly) every tile of the area is triggered and the per-tile
   costs compare like for like;
4. **nightly**: the next ``--incremental`` run: Sentinel-2 and Sentinel-1 read and encoded, NAIP from the cache;
5. **nightly, no cache**: the same incremental run from the same watermark with the cache off;
6. **nothing new**: the next ``--incremental`` run, when no scene is new: no tile, but the run's fixed costs
   (actors started, the model loaded, every group searched, summary, map and MLflow record). A benchmark-
   sized run is a few hundred tiles, so these weigh on its CPU per tile as they would not on a region;
   ``marginal_cpu_ms_per_tile`` is each run's CPU beyond them, per tile.

Each run's CPU seconds are summed over the driver's whole process tree (Ray's daemons and every actor;
:class:`jointssl.bench.infer.PeakMemory` without PSS sampling). Ratios: full / nightly in CPU seconds
per tile (goal >= 3) and in tiles/s; and in CPU seconds for the area (``..._per_area_tile``: the nightly pass
classifies only the tiles new scenes cover, the full pass every tile of the area).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

from jointssl import storage
from jointssl.config.schema import JobConfig, world_url
from jointssl.errors import JointsslError

NEW_SCENES = ("sentinel-2-l2a", "sentinel-1-rtc")
NEW_DATETIME = "2031-01-01T10:00:00Z"


def bench_nightly(config: JobConfig, sites: int = 160, both: bool = False) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); returns the results."""
    import ray

    from jointssl.bench.peers import area_file, register_random_classifier
    from jointssl.data.sites import read_sites

    table = read_sites(storage.join(world_url(config), "sites.parquet")).head(sites)
    source = Path(world_url(config))
    if not (source / "stac" / "items").is_dir():
        raise JointsslError(f"the nightly benchmark copies a local world's catalog; {source}/stac/items is missing",
                            hint="run 'jointssl world' with a local storage.root first")
    with tempfile.TemporaryDirectory(prefix="jointssl-bench-nightly-") as folder:
        tmp = Path(folder)
        shutil.copytree(source / "stac", tmp / "world" / "stac")
        uri = f"sqlite:///{tmp}/mlflow.db"
        model = register_random_classifier(config, uri)
        base = dataclasses.replace(
            config, tracking=dataclasses.replace(config.tracking, uri=uri),
            world=dataclasses.replace(config.world, out=str(tmp / "world")),
            infer=dataclasses.replace(config.infer, model=model, area=area_file(table, tmp / "area.geojson"),
                                      bbox=None, sites=None, progress_every_s=60.0, watermarks=str(tmp / "marks")))
        # a Ray of its own: without address, ray.init joins the last cluster any user started on this machine
        ray.init(address="local", num_cpus=config.ray.num_cpus, include_dashboard=False, log_to_driver=False)
        try:
            _run(base, tmp / "warm-up", incremental=False, cache="off")
            full = _run(base, tmp / "full", incremental=False, cache="off")
            first = _run(base, tmp / "inc", incremental=True, cache="auto")
            shutil.copytree(tmp / "marks", tmp / "marks-copy")
            ids = list(table["site_id"])
            if both:
                added = add_scenes(tmp / "world", ids, NEW_SCENES, NEW_DATETIME)
            else:
                added = {**add_scenes(tmp / "world", ids[::2], NEW_SCENES[:1], NEW_DATETIME),
                         **add_scenes(tmp / "world", ids[1::2], NEW_SCENES[1:], NEW_DATETIME)}
            nightly = _run(base, tmp / "inc", incremental=True, cache="auto")
            plain = _run(dataclasses.replace(base, infer=dataclasses.replace(
                base.infer, watermarks=str(tmp / "marks-copy"))), tmp / "inc-plain", incremental=True, cache="off")
            empty = _run(base, tmp / "inc", incremental=True, cache="auto")  # nothing new: what any run costs
        finally:
            ray.shutdown()
    runs = {"full": full, "first_incremental": first, "nightly": nightly, "nightly_no_cache": plain,
            "nothing_new": empty}
    for run in (full, first, nightly, plain):
        run["marginal_cpu_ms_per_tile"] = _marginal(run, empty)
    return {
        "sites": len(table), "new_scenes": added, "runs": runs,
        "full_over_nightly_cpu_per_tile": _ratio(full["cpu_ms_per_tile"], nightly["cpu_ms_per_tile"]),
        "nightly_over_full_tiles_per_s": _ratio(nightly["tiles_per_s"], full["tiles_per_s"]),
        "no_cache_over_cache_cpu_per_tile": _ratio(plain["cpu_ms_per_tile"], nightly["cpu_ms_per_tile"]),
        "full_over_nightly_cpu_per_area_tile": _ratio(full["cpu_s"], nightly["cpu_s"]),
        "full_over_nightly_marginal_cpu_per_tile": _ratio(full["marginal_cpu_ms_per_tile"],
                                                          nightly["marginal_cpu_ms_per_tile"]),
        "model": f"{config.model.backbone}, random weights", "cpus": config.ray.num_cpus,
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs)", "load_average": list(os.getloadavg()),
    }


def add_scenes(world: Path, site_ids: list[str], collections: tuple[str, ...], when: str) -> dict[str, int]:
    """Append to the copied catalog, per collection, a copy of each site's first item acquired at ``when``
    (ids suffixed '-nightly'); collection -> items added."""
    added: dict[str, int] = {}
    wanted = set(site_ids)
    for collection in collections:
        path = world / "stac" / "items" / f"{collection}.ndjson"
        seen: set[str] = set()
        new = []
        for line in path.read_text().splitlines():
            item = json.loads(line)
            site = item.get("properties", {}).get("jointssl:site_id")
            if site in wanted and site not in seen:
                seen.add(site)
                item["id"] += "-nightly"
                item["properties"]["datetime"] = when
                item["properties"]["eo:cloud_cover"] = 0.0
                new.append(item)
        with path.open("a") as handle:
            handle.write("".join(json.dumps(i) + "\n" for i in new))
        added[collection] = len(new)
    return added


def _run(config: JobConfig, out: Path, incremental: bool, cache: str) -> dict[str, Any]:
    from jointssl.bench.infer import measured_inference

    run_config = dataclasses.replace(config, infer=dataclasses.replace(
        config.infer, out=str(out), incremental=incremental, embedding_cache=cache))
    summary, seconds, sampler = measured_inference(run_config, memory=False)
    cpu = {k: v for k, v in sampler.cpu_s.items() if k != "sampler"}
    tiles = int(summary["tiles"])
    return {"tiles": tiles, "seconds": round(seconds, 1), "tiles_per_s": round(tiles / seconds, 2),
            "cpu_s": round(sum(cpu.values()), 1),
            "cpu_ms_per_tile": round(1000 * sum(cpu.values()) / tiles, 1) if tiles else None,
            "cpu_ms_per_tile_by_process": {k: round(1000 * v / tiles, 1) for k, v in
                                           sorted(cpu.items(), key=lambda kv: -kv[1]) if tiles and v > 0.05},
            "cpu_s_by_process": {k: round(v, 1) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v > 0.05},
            "embedding_cache": summary.get("embedding_cache")}


def _marginal(run: dict[str, Any], empty: dict[str, Any]) -> float | None:
    """CPU ms per tile beyond what a run over the area costs when nothing is new (actors started, the
    model loaded, every group searched, the summary, map and MLflow record): what a tile adds to a run."""
    return round(1000 * (run["cpu_s"] - empty["cpu_s"]) / run["tiles"], 1) if run["tiles"] else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None
