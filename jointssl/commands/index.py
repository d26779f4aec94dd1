"""Build the co-location index: for each site, the best STAC item of each sensor.

Reads the sites table (index.sites, default: the world's sites.parquet), searches the STAC API
(stac.url / JOINTSSL_STAC_URL; unset: the world's catalog served locally) with few, grouped, retried
and cached requests, and writes <index out>/index.parquet (one row per site x modality, with full
provenance) and <index out>/summary.json (requests, sites lacking a modality and why).

Examples:
  jointssl index                                    # the embedded default, after 'jointssl world'
  jointssl index --index.preset planetary-computer --stac.url https://planetarycomputer.microsoft.com/api/stac/v1 \\
      --index.sites my_sites.geojson --index.start 2022-01-01 --index.end 2022-12-31
"""

from __future__ import annotations

import argparse
import json

from jointssl.commands import add_config_arguments, load_args_config

HELP = "Co-locate sites with one STAC item per sensor and write the index (Parquet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from jointssl.data.index_job import run_index

    config = load_args_config(args)
    summary = run_index(config)
    print(json.dumps(summary, indent=2))
    return 0
