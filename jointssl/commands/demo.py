"""Run the main job end to end on the embedded default: world -> index -> chips.

1. world: generate the synthetic multi-sensor world (re-used when one with the same profile and seed
   is already at <storage.root>/world);
2. index: co-locate every site with one STAC item per sensor through a real STAC API (the world's
   catalog served on loopback unless stac.url / JOINTSSL_STAC_URL names one);
3. chips: stream every site's chips through Ray Data and count what was read and what was skipped.

Pre-training, evaluation and inference join these steps as they land (issues #5, #6, #7).
Everything lands under storage.root (default .jointssl/local); a summary is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

from jointssl.commands import add_config_arguments, load_args_config

HELP = "Run the main job end to end on the embedded default (world -> index -> chips)"
log = logging.getLogger("jointssl.demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--fresh", action="store_true", help="regenerate the world even if one is already there")


def run(args: argparse.Namespace) -> int:
    from jointssl.compute import ray_session
    from jointssl.config.schema import index_url, world_url
    from jointssl.data.index_job import run_index
    from jointssl.data.pipeline import scan_chips

    config = load_args_config(args)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    log.info("1/3 world -> %s", world_url(config))
    with ray_session(config.ray):
        world = _ensure_world(config, fresh=args.fresh)
        timings["world_s"] = time.perf_counter() - started

        log.info("2/3 index -> %s", index_url(config))
        index = run_index(config)
        timings["index_s"] = time.perf_counter() - started - timings["world_s"]

        log.info("3/3 chips (Ray Data)")
        chips = scan_chips(config)
        timings["chips_s"] = time.perf_counter() - started - timings["world_s"] - timings["index_s"]

    summary = {
        "world": world,
        "index": {k: index[k] for k in ("sites", "searches", "searches_per_1000_sites", "missing", "complete_sites")},
        "chips": chips,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "outputs": {"world": world_url(config), "index": index_url(config)},
    }
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _ensure_world(config, fresh: bool) -> dict:
    """The world's manifest: the one already at the world URL when it matches profile, seed and size."""
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
