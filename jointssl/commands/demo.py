"""Run the main job end to end on the embedded default: world -> index -> pretrain -> evaluate.

1. world: generate the synthetic multi-sensor world (re-used when one with the same profile and seed
   is already at <storage.root>/world);
2. index: co-locate every site with one STAC item per sensor through a real STAC API (the world's
   catalog served on loopback unless stac.url / JOINTSSL_STAC_URL names one);
3. pretrain: joint multi-modal SSL on the unlabelled + train sites, chips streamed by Ray Data into
   Ray Train workers, tracked in MLflow (re-running resumes the same run; --fresh starts over);
4. evaluate: linear probes, fine-tuning and baselines on the labelled sites, METER-ML metrics; the
   best classifier is registered as methane-classifier (alias champion if it beats the champion).

Everything lands under storage.root (default .jointssl/local), MLflow in its mlflow.db unless
tracking.uri / MLFLOW_TRACKING_URI names a server; the results table and a summary are printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

from jointssl.commands import add_config_arguments, load_args_config

HELP = "Run the main job end to end on the embedded default (world -> index -> pretrain -> evaluate)"
log = logging.getLogger("jointssl.demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--fresh", action="store_true",
                        help="regenerate the world and pre-train from scratch even if earlier outputs are there")


def run(args: argparse.Namespace) -> int:
    from jointssl.compute import ray_session
    from jointssl.config.schema import index_url, world_url
    from jointssl.data.index_job import run_index
    from jointssl.evaluate.run import evaluate
    from jointssl.train.trainer import pretrain

    config = load_args_config(args)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        timings[f"{name}_s"] = time.perf_counter() - started - sum(timings.values())

    log.info("1/4 world -> %s", world_url(config))
    with ray_session(config.ray):
        world = _ensure_world(config, fresh=args.fresh)
        lap("world")

        log.info("2/4 index -> %s", index_url(config))
        index = run_index(config)
        lap("index")

        log.info("3/4 pretrain -> %s", config.storage.url("checkpoints", config.run.name))
        if args.fresh:
            _forget_run(config)
        trained = pretrain(config)
        lap("pretrain")

    log.info("4/4 evaluate -> %s", config.evaluate.out or config.storage.url("evaluation", config.run.name))
    results = evaluate(config)
    lap("evaluate")

    print(results.pop("table"))
    summary = {
        "world": {k: world[k] for k in ("profile", "sites", "seed") if k in world},
        "index": {k: index[k] for k in ("sites", "searches", "searches_per_1000_sites", "missing", "complete_sites")},
        "pretrain": {k: trained[k] for k in ("steps", "epochs", "model", "mlflow_run_id", "metrics")},
        "evaluate": {k: results[k] for k in ("best", "best_test_macro_auprc", "registered", "decision", "out")},
        "tracking_uri": results["tracking_uri"],
        "seconds": {**{k: round(v, 1) for k, v in timings.items()}, "total": round(time.perf_counter() - started, 1)},
    }
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _forget_run(config) -> None:
    """--fresh: drop the run's checkpoints so pre-training starts over instead of resuming."""
    from jointssl import storage

    fs, path = storage.filesystem(config.storage.url("checkpoints", config.run.name))
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _ensure_world(config, fresh: bool) -> dict:
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


def _world_manifest(config, fresh: bool) -> dict:
    from jointssl import storage
    from jointssl.config.schema import world_url
    from jointssl.world.publish import generate_world, resolve_profile

    url = storage.join(world_url(config), "manifest.json")
    fs, path = storage.filesystem(url)
    profile = resolve_profile(config)
    if not fresh and fs.exists(path):
        existing = json.loads(fs.cat_file(path))
        if (existing.get("profile"), existing.get("seed"), existing.get("sites")) == (
            config.world.profile, config.run.seed, profile.sites):
            log.info("re-using the world at %s (--fresh regenerates it)", world_url(config))
            return existing
    manifest = generate_world(config, profile)
    return json.loads(manifest.to_json())
