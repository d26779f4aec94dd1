"""Benchmarks that print measured ratios (same run, same machine); never timed assertions.

  jointssl bench chips [--sites N] [--threads T]   loader chips/s / raw rasterio window reads of the
                                                  same windows, same store, same threads (goal >= 0.8),
                                                  and STAC searches per 1,000 sites from the index

Runs on the world and index of the given config (run 'jointssl world' and 'jointssl index' first,
or 'jointssl demo'). Point storage.root at s3://... (with the platform's environment) to measure
reads from object storage instead of local disk.
"""

from __future__ import annotations

import argparse
import json
import platform

from jointssl.commands import add_config_arguments, load_args_config

HELP = "Measure chip read efficiency (loader vs raw rasterio) and STAC requests per 1,000 sites"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["chips"], help="which benchmark to run")
    parser.add_argument("--sites", type=int, default=200, help="sites to read (default: 200)")
    parser.add_argument("--threads", type=int, default=8, help="concurrent reads on both sides (default: 8)")
    parser.add_argument("--reader", choices=["rasterio", "stackstac"], default=None,
                        help="chip reader to measure (default: chips.reader from the config)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from jointssl import storage
    from jointssl.bench.chip_read import bench_chip_read
    from jointssl.config.schema import index_url
    from jointssl.data.pipeline import load_site_table, modalities_of

    config = load_args_config(args)
    table = load_site_table(config).head(args.sites)
    result = bench_chip_read(table, modalities_of(config), threads=args.threads,
                             reader=args.reader or config.chips.reader)
    fs, path = storage.filesystem(storage.join(index_url(config), "summary.json"))
    if fs.exists(path):
        result["stac_searches_per_1000_sites"] = json.loads(fs.cat_file(path))["searches_per_1000_sites"]
    result["store"] = config.storage.root
    result["machine"] = f"{platform.node()} ({platform.processor() or platform.machine()})"
    print(json.dumps(result, indent=2))
    return 0
