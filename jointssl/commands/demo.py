"""Run the main job end to end on the embedded default: world -> index -> pretrain -> evaluate -> infer.

1. world: generate the synthetic multi-sensor world (re-used when one with the same profile and seed
   is already at <storage.root>/world);
2. index: co-locate every site with one STAC item per sensor through a real STAC API (the world's
   catalog served on loopback unless stac.url / JOINTSSL_STAC_URL names one);
3. pretrain: joint multi-modal SSL on the unlabelled + train sites on Ray Train (epoch 1 reads the COGs
   and writes the chip cache, later epochs stream it), tracked in MLflow (re-running resumes the same
   run; --fresh starts over);
4. evaluate: linear probes, fine-tuning and baselines on the labelled sites, METER-ML metrics,
   calibration and operating points; the best classifier is registered as methane-classifier (alias
   champion if it beats the champion);
5. infer: the classifier this run registered (infer.model when configured otherwise) classifies every
   tile of a small area of the world (infer.area / bbox / sites when configured, else the sites of the
   one-degree cell holding the most) into GeoParquet, a candidates file and a detections map.

Everything lands under storage.root (default .jointssl/local), MLflow in its mlflow.db unless
tracking.uri / MLFLOW_TRACKING_URI names a server; the results table, a summary, where each output is
and how to open the MLflow UI are printed. Each stage's wall time goes to <storage.root>/demo/timings.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from jointssl.commands import add_config_arguments, load_args_config

if TYPE_CHECKING:
    from jointssl.config import JobConfig

T = TypeVar("T")

DEMO_AREA_MARGIN_DEG = 0.01
"""Margin around the demo area's sites (~1 km): every site footprint lies inside, with room around it."""

HELP = "Run the main job end to end on the embedded default (world -> index -> pretrain -> evaluate -> infer)"
log = logging.getLogger("jointssl.demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--fresh", action="store_true",
                        help="regenerate the world and pre-train from scratch even if earlier outputs are there")


def run(args: argparse.Namespace) -> int:
    from jointssl.compute import ray_session
    from jointssl.config.schema import index_url, world_url
    from jointssl.data.index_job import run_index

    config = load_args_config(args)
    clock = StageClock()

    log.info("1/5 world -> %s", world_url(config))
    # what the later stages import (torch, timm, MLflow: ~6 s on one core) and the tracking store (a new sqlite
    # database: ~3 s of MLflow's migrations) are made ready while Ray starts and the world renders, not before
    with ThreadPoolExecutor(1, thread_name_prefix="prepare") as pool:
        later_stages = pool.submit(_prepare_later_stages, config)
        with ray_session(config.ray):
            world = clock.time("world", lambda: _ensure_world(config, fresh=args.fresh))
            pretrain, evaluate, run_inference = later_stages.result()

            log.info("2/5 index -> %s", index_url(config))
            index = clock.time("index", lambda: run_index(config))

            log.info("3/5 pretrain -> %s", config.storage.url("checkpoints", config.run.name))
            if args.fresh:
                _forget_run(config)
            trained = clock.time("pretrain", lambda: pretrain(config))

            # one Ray for every stage: inference re-uses it (a second start cost ~4 s on 2 cores)
            log.info("4/5 evaluate -> %s", config.evaluate.out or config.storage.url("evaluation", config.run.name))
            results = clock.time("evaluate", lambda: evaluate(config))

            infer_config = _with_demo_area(config, str(results["model_uri"]))
            log.info("5/5 infer %s -> %s", _area_text(infer_config),
                     infer_config.infer.out or config.storage.url("inference", config.run.name))
            inferred = clock.time("infer", lambda: run_inference(infer_config))

    print(results.pop("table"))
    summary = {
        "world": {k: world[k] for k in ("profile", "sites", "seed") if k in world},
        "index": {k: index[k] for k in ("sites", "searches", "searches_per_1000_sites", "missing", "complete_sites")},
        "pretrain": {k: trained[k] for k in ("steps", "epochs", "model", "mlflow_run_id", "metrics")},
        "evaluate": {k: results[k] for k in ("best", "best_test_macro_auprc", "registered", "decision", "out")},
        "infer": {**{k: inferred.get(k) for k in ("area", "tiles", "classified", "detections", "skipped", "out")},
                  "operating_point": (inferred.get("decision") or {}).get("operating_point"),
                  "out_of_distribution": inferred.get("out_of_distribution")},
        "tracking_uri": results["tracking_uri"],
        "seconds": clock.seconds(),
    }
    timings_url = _write_timings(config, clock)
    print(_where_things_are(config, results, inferred, timings_url))
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _prepare_later_stages(config: JobConfig) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """Pre-training's, evaluation's and inference's entry points, imported, and the tracking store and the
    experiment created when new (what every stage's first MLflow call waits for)."""
    from jointssl import tracking
    from jointssl.evaluate.run import evaluate
    from jointssl.infer.run import run_inference
    from jointssl.train.trainer import pretrain

    tracking.experiment_id(config, tracking.tracking_uri(config))
    return pretrain, evaluate, run_inference


class StageClock:
    """Wall time of each demo stage, in the order they ran."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stages: dict[str, float] = {}

    def time(self, name: str, fn: Callable[[], T]) -> T:
        began = time.perf_counter()
        try:
            return fn()
        finally:
            self.stages[name] = time.perf_counter() - began

    def seconds(self) -> dict[str, float]:
        return {**{f"{k}_s": round(v, 1) for k, v in self.stages.items()},
                "total": round(time.perf_counter() - self.started, 1)}


def _with_demo_area(config: JobConfig, registered: str) -> JobConfig:
    """The config to infer with. The model: infer.model when configured, else ``registered`` (the version
    this run's evaluation registered, champion or not). The area: as given when infer names an area, a
    bbox or sites; else the bbox (plus a margin of ``DEMO_AREA_MARGIN_DEG``) of the world's sites in the
    ``infer.partition_deg`` cell that holds the most of them: a small area with imagery, which the map
    shows up close."""
    import dataclasses

    from jointssl import storage
    from jointssl.config.schema import world_url
    from jointssl.data.sites import read_sites
    from jointssl.infer.config import InferConfig

    infer = config.infer
    if infer.model == InferConfig().model:
        infer = dataclasses.replace(infer, model=registered)
    if infer.area or infer.bbox or infer.sites:
        return dataclasses.replace(config, infer=infer)
    sites = read_sites(config.index.sites or storage.join(world_url(config), "sites.parquet"))
    deg = infer.partition_deg
    cell = (sites["lon"] // deg).astype(int).astype(str) + "," + (sites["lat"] // deg).astype(int).astype(str)
    chosen = sites[cell == cell.value_counts().idxmax()]
    pad = DEMO_AREA_MARGIN_DEG
    bbox = [round(float(chosen["lon"].min()) - pad, 5), round(float(chosen["lat"].min()) - pad, 5),
            round(float(chosen["lon"].max()) + pad, 5), round(float(chosen["lat"].max()) + pad, 5)]
    return dataclasses.replace(config, infer=dataclasses.replace(infer, bbox=bbox))


def _area_text(config: JobConfig) -> str:
    infer = config.infer
    return infer.area or infer.sites or f"bbox {infer.bbox}"


def _write_timings(config: JobConfig, clock: StageClock) -> str:
    """<storage.root>/demo/timings.json: each stage's seconds, the machine and its load (for regressions)."""
    import os
    import platform

    from jointssl import storage

    url = config.storage.url("demo", "timings.json")
    record = {"seconds": clock.seconds(), "cpus": os.cpu_count(), "load_avg_1_5_15": list(os.getloadavg()),
              "machine": platform.machine(), "python": platform.python_version(),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    fs, path = storage.filesystem(url)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, json.dumps(record, indent=2).encode())
    return url


def _where_things_are(config: JobConfig, results: dict[str, Any], inferred: dict[str, Any], timings: str) -> str:
    from jointssl import storage
    from jointssl.config.schema import index_url, world_url

    out = str(inferred.get("out", ""))
    tracking = str(results["tracking_uri"])
    ui = (f"mlflow ui --backend-store-uri {tracking}" if tracking.startswith("sqlite:")
          else f"open {tracking} in a browser")
    rows = [
        ("world (COGs, STAC, sites)", world_url(config)),
        ("co-location index", storage.join(index_url(config), "index.parquet")),
        ("pre-training checkpoints", config.storage.url("checkpoints", config.run.name)),
        ("evaluation (results.md, plots)", str(results.get("out"))),
        ("detections (GeoParquet partitions)", out),
        ("detections map", storage.join(out, "_map.png") if out else "-"),
        ("stage timings", timings),
        ("MLflow runs and models", f"{tracking}  ->  {ui}  (then http://127.0.0.1:5000)"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\nwhere things are:\n" + "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def _forget_run(config: JobConfig) -> None:
    """--fresh: drop the run's checkpoints so pre-training starts over instead of resuming."""
    from jointssl import storage

    fs, path = storage.filesystem(config.storage.url("checkpoints", config.run.name))
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _ensure_world(config: JobConfig, fresh: bool) -> dict[str, Any]:
    """The world's manifest (the one already at the world URL when it matches profile, seed and size),
    upserted into pgstac when JOINTSSL_PGSTAC_DSN names one, as ``jointssl world`` does."""
    import os

    manifest = _world_manifest(config, fresh)
    dsn = os.environ.get("JOINTSSL_PGSTAC_DSN")
    if dsn:
        from jointssl.config.schema import world_url
        from jointssl.world.publish import load_into_pgstac

        log.info("loading the world into pgstac (JOINTSSL_PGSTAC_DSN): %s", load_into_pgstac(world_url(config), dsn))
    return manifest


def _world_manifest(config: JobConfig, fresh: bool) -> dict[str, Any]:
    from jointssl import storage
    from jointssl.config.schema import world_url
    from jointssl.world.publish import generate_world, resolve_profile

    url = storage.join(world_url(config), "manifest.json")
    fs, path = storage.filesystem(url)
    profile = resolve_profile(config)
    if not fresh and fs.exists(path):
        existing: dict[str, Any] = json.loads(fs.cat_file(path))
        if (existing.get("profile"), existing.get("seed"), existing.get("sites")) == (
            config.world.profile, config.run.seed, profile.sites):
            log.info("re-using the world at %s (--fresh regenerates it)", world_url(config))
            return existing
    manifest = generate_world(config, profile)
    fresh_manifest: dict[str, Any] = json.loads(manifest.to_json())
    return fresh_manifest
