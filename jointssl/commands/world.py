"""Generate the synthetic multi-sensor world: labelled and unlabelled sites imaged by NAIP-like,
Sentinel-2 L2A-like and Sentinel-1 RTC-like sensors, published as COGs + STAC (+ a GeoParquet sites table).

Examples:
  jointssl world --profile test --out /tmp/world                 # tiny, seconds
  jointssl world --profile demo                                  # -> <storage.root>/world
  jointssl world --profile demo --out s3://jointssl/world --world.workers 2
  jointssl world --out /tmp/world --contact-sheet docs/images/world_contact_sheet.png
  jointssl world --out s3://jointssl/world --load-pgstac postgresql://user:pw@127.0.0.1:5432/postgis
  jointssl world --learnability --out /tmp/world                 # print the learnability probes

Same --run.seed, same bytes. Outputs: cogs/, stac/collections/<id>.json, stac/items/<id>.ndjson,
sites.parquet, manifest.json under the output URL.
"""

from __future__ import annotations

import argparse
import os

from jointssl.commands import add_config_arguments, load_args_config

HELP = "Generate the synthetic multi-sensor world as COGs + STAC"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--profile", choices=("test", "demo", "bench"),
                        help="world size preset (jointssl/world/profiles.yaml); same as --world.profile")
    parser.add_argument("--sites", type=int, metavar="N",
                        help="number of sites (default: the profile's); same as --world.sites")
    parser.add_argument("--out", metavar="URL", help="output location, local path or s3://bucket/prefix "
                        "(default: <storage.root>/world); same as --world.out")
    parser.add_argument("--contact-sheet", metavar="PNG",
                        help="also write a PNG contact sheet (one row per class) here")
    parser.add_argument("--learnability", action="store_true",
                        help="also run the learnability probes on the labelled sites and print macro AUPRC")
    parser.add_argument("--load-pgstac", metavar="DSN", default=os.environ.get("JOINTSSL_PGSTAC_DSN"),
                        help="upsert the collections and items into this pgstac database "
                        "(default: $JOINTSSL_PGSTAC_DSN if set)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    for flag, key in ((args.profile, "profile"), (args.sites, "sites"), (args.out, "out")):
        if flag is not None:
            overrides += [f"--world.{key}", str(flag)]
    args.overrides = overrides
    config = load_args_config(args)

    from jointssl.world.publish import generate_world, load_into_pgstac

    manifest = generate_world(config, progress=not args.no_progress)
    print(f"world: {manifest.sites} sites ({manifest.labelled} labelled) in {manifest.seconds:.1f} s -> {manifest.url}")
    print("items: " + ", ".join(f"{c} {n}" for c, n in manifest.items.items()))
    print("splits: " + ", ".join(f"{s} {n}" for s, n in manifest.splits.items()))
    if args.contact_sheet:
        from jointssl.world.contact_sheet import contact_sheet

        print(f"contact sheet: {contact_sheet(manifest.url, args.contact_sheet)}")
    if args.learnability:
        from jointssl.world.learnability import check_learnability

        print("\n".join(check_learnability(manifest.url).lines()))
    if args.load_pgstac:
        counts = load_into_pgstac(manifest.url, args.load_pgstac)
        print("pgstac: loaded " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    return 0
