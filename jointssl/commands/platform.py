"""Start, check and stop the local platform of real services, all on 127.0.0.1:

  SeaweedFS (S3)         buckets 'jointssl' and 'mlflow'       default port 8333
  PostgreSQL + PostGIS   databases 'pgstac' and 'mlflow'       default port 5439
  STAC API               stac-fastapi-pgstac                   default port 8081
  MLflow                 tracking server, artifacts in S3      default port 5000
  Ray head               GCS 6379, dashboard / job API         default port 8265

  jointssl platform up                 # start (or reuse) everything; ~1 minute the first time
  eval "$(jointssl platform env)"      # point this shell's jobs at it
  jointssl platform status             # URLs and health; exit 1 if anything is down
  jointssl platform down               # stop everything by PID

Data, logs (logs/<service>.log), pid files and generated credentials live in --home. Without a
platform, commands fall back to an embedded STAC API (rustac) and local files.
Run inside infra/local/loopback-netns.sh so Ray, too, listens on loopback only.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jointssl.platform.stack import ServiceStatus

HELP = "Start, check and stop the local platform of real services (SeaweedFS, PostgreSQL/STAC API, MLflow, Ray)"

DEFAULT_HOME = ".jointssl/platform"
PORT_HELP = {
    "s3": "SeaweedFS S3 gateway",
    "postgres": "PostgreSQL (pgstac and MLflow databases)",
    "stac": "STAC API (stac-fastapi-pgstac)",
    "mlflow": "MLflow tracking server",
    "ray_gcs": "Ray GCS (ray.init(address='127.0.0.1:PORT'))",
    "ray_dashboard": "Ray dashboard and job API (RAY_ADDRESS=http://127.0.0.1:PORT)",
    "ray_client": "Ray client server",
    "seaweedfs_master": "SeaweedFS master (gRPC on PORT+10000)",
    "seaweedfs_volume": "SeaweedFS volume server (gRPC on PORT+10000)",
    "seaweedfs_filer": "SeaweedFS filer (gRPC on PORT+10000)",
    "seaweedfs_admin": "SeaweedFS admin server (gRPC on PORT+10000)",
}


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        metavar="DIR",
        default=DEFAULT_HOME,
        help=f"platform directory: data, logs, pid files, credentials (default: {DEFAULT_HOME})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from jointssl.platform.settings import Ports

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    defaults = Ports()

    up = sub.add_parser(
        "up",
        help="start every service (reusing healthy running ones) and wait until all are healthy",
        description="Start every service, or reuse those already running healthy from --home. Checks "
        "binaries and ports first; on a failure prints the service's log tail and stops what it started.",
    )
    _add_home(up)
    ports = up.add_argument_group("ports (all on 127.0.0.1; kept in DIR/platform.json for status/env/down)")
    for f in fields(Ports):
        flag = "--" + f.name.replace("_", "-") + "-port"
        ports.add_argument(
            flag, dest=f"port_{f.name}", type=int, metavar="PORT", default=getattr(defaults, f.name),
            help=f"{PORT_HELP[f.name]} (default: %(default)s)",
        )
    up.add_argument(
        "--ray-num-cpus", type=int, metavar="N", default=None,
        help="CPUs the Ray head offers to tasks (default: all cores of this machine)",
    )
    up.add_argument(
        "--ray-object-store-mb", type=int, metavar="MB", default=2048,
        help="Ray object store size in MiB (default: %(default)s)",
    )
    up.add_argument(
        "--only", metavar="SERVICE", action="append", default=None,
        help="start only this service and what it needs (repeatable): seaweedfs, postgres, stac, mlflow, ray",
    )

    status = sub.add_parser(
        "status", help="print each service's URL and health; exit 1 if any is down",
        description="Print each service's URL, PID and health. Exit status 1 when any service is down.",
    )
    _add_home(status)

    down = sub.add_parser(
        "down", help="stop every service by PID and check that none is left",
        description="Stop every service of --home by its recorded PIDs (SIGTERM, then SIGKILL). Data is kept.",
    )
    _add_home(down)

    env = sub.add_parser(
        "env", help="print 'export KEY=VALUE' lines for jobs: endpoints, credentials, Ray auth",
        description="Print the environment a job needs: S3 endpoint and keys, STAC URL, pgstac DSN, "
        "MLflow URI, Ray address and token auth. Use: eval \"$(jointssl platform env)\". Contains secrets.",
    )
    _add_home(env)


def run(args: argparse.Namespace) -> int:
    return {"up": _up, "status": _status, "down": _down, "env": _env}[args.action](args)


def _up(args: argparse.Namespace) -> int:
    from jointssl.platform import stack
    from jointssl.platform.settings import PlatformSettings, Ports

    settings = PlatformSettings(
        home=args.home,
        ports=Ports(**{f.name: getattr(args, f"port_{f.name}") for f in fields(Ports)}),
        ray_num_cpus=args.ray_num_cpus,
        ray_object_store_bytes=args.ray_object_store_mb * 1024**2,
    )
    result = stack.up(settings, only=args.only)
    for name, seconds in result.started.items():
        print(f"started {name:10s} healthy after {seconds:5.1f} s")
    for name in result.reused:
        print(f"reused  {name:10s} (already running and healthy)")
    print(f"platform up in {result.seconds:.1f} s; home {settings.home}")
    _print_status(stack.status(settings.home))
    print(f'use it from a shell: eval "$(jointssl platform env --home {shlex.quote(args.home)})"')
    return 0


def _print_status(report: Sequence[ServiceStatus]) -> bool:
    for s in report:
        state = "healthy" if s.healthy else ("UNHEALTHY" if s.pid else "down")
        pid = f"PID {s.pid}" if s.pid else "-"
        print(f"{s.name:10s} {state:10s} {pid:12s} {s.url}")
    return all(s.healthy for s in report)


def _status(args: argparse.Namespace) -> int:
    from jointssl.platform import stack

    return 0 if _print_status(stack.status(args.home)) else 1


def _down(args: argparse.Namespace) -> int:
    import time

    from jointssl.platform import stack

    began = time.monotonic()
    left = stack.down(args.home)
    if left:
        print(f"still running after down: PIDs {left}", file=sys.stderr)
        return 1
    print(f"platform down in {time.monotonic() - began:.1f} s: no recorded process is left")
    return 0


def _env(args: argparse.Namespace) -> int:
    from jointssl.platform import stack

    for key, value in stack.client_env(args.home).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0
