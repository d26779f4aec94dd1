"""Build the co-location index: for each site, the best STAC item of each sensor.

Reads the sites table (index.sites, default: the world's sites.parquet), searches the STAC API
(stac.url / JOINTSSL_STAC_URL; unset: the world's catalog served locally) with few, grouped, retried
and cached requests, and writes <index out>/index.parquet (one row per site x modality, with full
provenance) and <index out>/summary.json (requests, sites lacking a modality and why).

Examples:
  jointssl index                                    # the embedded default, after 'jointssl world'
  jointssl index --index.preset planetary-computer --stac.url https://planetarycomputer.microsoft.com/api/stac/v1 \\
      --index.sites my_sites.geojson --index.start 2022-01-01 --index.end 2022-12-31
  jointssl index --scan-chips                       # and read every chip once (counts reads and skips)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from jointssl.commands import add_config_arguments, load_args_config

HELP = "Co-locate sites with one STAC item per sensor and write the index (Parquet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--scan-chips", action="store_true",
                        help="then stream every indexed chip once through Ray Data and report what was read "
                        "and skipped (what jobs/index.py runs on a cluster)")


def run(args: argparse.Namespace) -> int:
    from jointssl.data.index_job import run_index

    config = load_args_config(args)
    summary: dict[str, Any] = {"index": run_index(config)}
    if args.scan_chips:
        from jointssl.compute import ray_session
        from jointssl.data.pipeline import scan_chips

        with ray_session(config.ray):
            summary["chips"] = scan_chips(config)
    print(json.dumps(summary if args.scan_chips else summary["index"], indent=2, default=str))
    return 0
