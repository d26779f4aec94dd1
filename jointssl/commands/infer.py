"""Classify methane sources over an area (or a list of candidate sites) and write GeoParquet.

The area (infer.area GeoJSON, infer.bbox or infer.sites) is tiled where imagery exists, each tile
co-located with one STAC item per sensor and classified by the registered classifier
(infer.model, default models:/methane-classifier@champion) in a Ray Data actor pool. Predictions land
in <infer.out>/<run>/part-<cell>.parquet (GeoParquet: tile square, per-class probabilities, top class,
STAC item ids and datetimes per sensor, model version, run id), with _summary.json and _map.png, both
also logged to MLflow. Re-running the same command resumes an interrupted run (only missing
partitions) and does nothing for a finished one.

Examples:
  jointssl infer --config configs/demo.yaml --infer.bbox "[-104, 30, -94, 37]"
  jointssl infer --config configs/demo.yaml --infer.sites candidates.geojson --infer.threshold 0.6
  jointssl infer --config configs/k8s-infer.yaml --incremental     # what the CronJob runs
  jointssl infer --config configs/k8s-infer.yaml --drop-embedding-cache
"""

from __future__ import annotations

import argparse
import json

from jointssl.commands import add_config_arguments, load_args_config

HELP = "Classify methane sources over an area and write GeoParquet (resumable, --incremental)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--incremental", action="store_true",
                        help="only tiles with imagery newer than the area's watermark; then advance it "
                        "(same as --infer.incremental true)")
    parser.add_argument("--drop-embedding-cache", action="store_true",
                        help="delete this config's embedding cache (infer.embedding_cache_url, default "
                        "<infer.out>/_embeddings) and exit; the next run re-encodes every sensor")


def run(args: argparse.Namespace) -> int:
    from jointssl.infer.run import run_inference

    if args.incremental:
        args.overrides = [*args.overrides, "--infer.incremental", "true"]
    config = load_args_config(args)
    if args.drop_embedding_cache:
        from jointssl.infer.embedding_cache import drop_cache, embedding_cache_url

        url = embedding_cache_url(config)
        print(json.dumps({"embedding_cache": url, "dropped": drop_cache(url)}))
        return 0
    summary = run_inference(config)
    print(json.dumps(summary, indent=2, default=str))
    return 0
