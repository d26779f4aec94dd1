"""Benchmarks that print measured ratios (same run, same machine); never timed assertions.

  jointssl bench chips [--sites N] [--threads T]   loader chips/s / raw rasterio window reads of the
                                                  same windows, same store, same threads (goal >= 0.8),
                                                  and STAC searches per 1,000 sites from the index
  jointssl bench infer [--sites N] [--scale K]      inference efficiency: end-to-end tiles/s / the model's
                                                  forward tiles/s (goal >= 0.8), and peak memory for an
                                                  area K times larger (goal < 10 % growth); see
                                                  jointssl/bench/infer.py
  jointssl bench forward                           CPU ms per tile: today's predict vs the inference forward
                                                  (channels_last, torch.compile), one thread
  jointssl bench loop [--sites N]                  jointssl infer tiles/s / a plain PyTorch DataLoader loop over
                                                  the same tiles, same model (goal >= 1.5 at ~3,000 tiles)
  jointssl bench nightly [--sites N]               an --incremental pass after new S2 + S1 scenes (NAIP from the
                                                  embedding cache) vs a full pass: CPU s per tile (goal >= 3x)
  jointssl bench country [--gpu-tflops R]          measured per-stage costs projected to the contiguous US:
                                                  tiles, bytes, CPU- and GPU-hours, wall time on 1/4/16 nodes
  jointssl bench ingest [--workers 1,2] [--steps S] train samples/s fed from the store (each worker
                                                  reads its rows: COGs, or the chip cache) / the same Ray Train job on
                                                  batches in memory, per worker count (goal >= 0.95)
  jointssl bench peers [--sites N]                 jointssl chip loading / TorchGeo's over the same COGs
                                                  (goal > 1; needs the 'bench' extra: torchgeo)
  jointssl bench scaling [--gpu-samples-per-s R]   1 vs 2 Ray workers (parallel efficiency) and a projection
                                                  to N GPU nodes from the stage costs measured here
  jointssl bench chaos [--faults N] [--train-faults M] [--duration S] [--train-duration S] [--seed K]
                      [--write docs/reliability.md]
                                                  a seeded random schedule of faults (STAC 429/5xx/slow/truncated,
                                                  loader/predictor actor kills, S3 and MLflow restarts) over
                                                  repeated inference runs and (M > 0) a training run (train worker
                                                  kill, node loss, MLflow restart) on a platform of its own:
                                                  recoveries, p50/p95 recovery time, tiles duplicated/missing,
                                                  steps lost; see jointssl/bench/chaos.py
  jointssl bench all [--write docs/benchmarks.md] [--s3-root s3://...]
                                                  chips, ingest, scaling and peers in one run; --write puts
                                                  date, machine, load, command, ratios and raw outputs into
                                                  the file between its markers (other sections are kept)

Runs on the world and index of the given config (run 'jointssl world' and 'jointssl index' first,
or 'jointssl demo'). Point storage.root at s3://... (with the platform's environment) to measure
reads from object storage instead of local disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from typing import TYPE_CHECKING

from jointssl.commands import add_config_arguments, load_args_config

if TYPE_CHECKING:
    from jointssl.config.schema import JobConfig

HELP = "Benchmarks (chip reads, inference, ingest, TorchGeo peer, scaling): measured ratios, one run, one machine"
MINE = ("ingest", "peers", "scaling", "all")
"""Benchmarks whose options and driver live in jointssl/bench/report.py."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["chips", "infer", "forward", "loop", "nightly", "country", "chaos", *MINE],
                        help="which benchmark to run")
    parser.add_argument("--sites", type=int, default=None,
                        help="sites to read (chips, default: 200) / sites in the large area (infer, default: all)")
    parser.add_argument("--threads", type=int, default=8, help="concurrent reads on both sides (default: 8)")
    parser.add_argument("--reader", choices=["rasterio", "stackstac"], default=None,
                        help="chip reader to measure (default: chips.reader from the config)")
    parser.add_argument("--scale", type=int, default=10, help="infer: the large area is this many times the small one")
    parser.add_argument("--gpu-tflops", type=float, default=None,
                        help="country: sustained encoder TFLOP/s per GPU (default: jointssl.bench.country.GPU_TFLOPS)")
    parser.add_argument("--nightly-both", action="store_true",
                        help="nightly: new Sentinel-2 and Sentinel-1 scenes on every site (default: one or the other)")
    parser.add_argument("--loop-workers", type=int, default=2, help="loop: DataLoader worker processes of the peer")
    parser.add_argument("--model", choices=["random", "registry"], default="random",
                        help="infer: config.model's architecture with random weights, or infer.model from the registry")
    parser.add_argument("--faults", type=int, default=5, help="chaos: faults to inject (default: 5)")
    parser.add_argument("--duration", type=float, default=60.0, help="chaos: seconds the faults are drawn over")
    parser.add_argument("--seed", type=int, default=0, help="chaos: seed of the fault schedule (default: 0)")
    parser.add_argument("--train-faults", type=int, default=0,
                        help="chaos: of --faults, how many go into a training run (default: 0, no training run)")
    parser.add_argument("--train-duration", type=float, default=60.0,
                        help="chaos: seconds the training faults are drawn over, from the training run's start")
    from jointssl.bench.report import add_bench_options

    add_bench_options(parser)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from jointssl import storage
    from jointssl.bench.chip_read import bench_chip_read
    from jointssl.config.schema import index_url
    from jointssl.data.pipeline import load_site_table, modalities_of

    config = load_args_config(args)
    if args.what in MINE:
        from jointssl.bench.report import run_bench

        return run_bench(args, config)
    if args.what == "chaos":
        return _run_chaos(args, config)
    if args.what in ("forward", "loop", "nightly", "country"):
        return _run_infer_peer(args, config)
    if args.what == "infer":
        from jointssl.bench.infer import bench_infer

        print(json.dumps(bench_infer(config, sites=args.sites, scale=args.scale, model=args.model), indent=2))
        return 0
    table = load_site_table(config).head(args.sites or 200)
    result = bench_chip_read(table, modalities_of(config), threads=args.threads,
                             reader=args.reader or config.chips.reader)
    fs, path = storage.filesystem(storage.join(index_url(config), "summary.json"))
    if fs.exists(path):
        result["stac_searches_per_1000_sites"] = json.loads(fs.cat_file(path))["searches_per_1000_sites"]
    result["store"] = config.storage.root
    result["machine"] = f"{platform.node()} ({platform.processor() or platform.machine()})"
    print(json.dumps(result, indent=2))
    return 0


def _run_infer_peer(args: argparse.Namespace, config: JobConfig) -> int:
    """forward: the forward's variants on CPU (jointssl.bench.forward); loop: jointssl infer vs a plain
    DataLoader loop (jointssl.bench.peers.bench_inference); nightly: an incremental pass after new S2/S1
    scenes vs a full pass (jointssl.bench.nightly); country: the per-stage costs and the whole-country
    projection (jointssl.bench.country)."""
    if args.what == "forward":
        from jointssl.bench.forward import bench_forward

        result = bench_forward(config)
    elif args.what == "loop":
        from jointssl.bench.peers import bench_inference

        result = bench_inference(config, sites=args.sites or 160, num_workers=args.loop_workers)
    elif args.what == "nightly":
        from jointssl.bench.nightly import bench_nightly

        result = bench_nightly(config, sites=args.sites or 160, both=args.nightly_both)
    else:
        from jointssl.bench.country import GPU_TFLOPS, bench_country

        result = bench_country(config, sites=args.sites or 160, gpu_tflops=args.gpu_tflops or GPU_TFLOPS)
    result["load_average_at_end"] = list(os.getloadavg())
    print(json.dumps(result, indent=2, default=str))
    return 0


def _run_chaos(args: argparse.Namespace, config: JobConfig) -> int:
    """chaos: the seeded fault schedule over repeated inference runs and a training run (jointssl.bench.chaos);
    prints the summary as JSON and, with --write FILE, regenerates the chaos section of FILE (docs/reliability.md)."""
    from jointssl.bench.chaos import ChaosSettings, run_chaos
    from jointssl.bench.chaos_report import render, summary, write_section

    result = run_chaos(config, ChaosSettings(seed=args.seed, faults=args.faults, train_faults=args.train_faults,
                                             duration_s=args.duration, train_duration_s=args.train_duration,
                                             sites=args.sites))
    s = summary(result)
    print(json.dumps(s, indent=2))
    if args.write:
        command = (f"jointssl bench chaos --faults {args.faults} --train-faults {args.train_faults} --duration "
                   f"{args.duration:g} --train-duration {args.train_duration:g} --seed {args.seed}")
        write_section(args.write, render(result, command, f"{platform.node()} ({os.cpu_count()} CPUs)"))
    train = s.get("train", {"finished": True, "faults_over_one_interval": 0})
    clean = s["tiles_duplicated"] == s["tiles_missing"] == s["not_recovered"] == 0
    return 0 if clean and train["finished"] and not train["faults_over_one_interval"] else 1
