"""Create one RayJob on Kubernetes from a template: how the nightly CronJob starts incremental inference.

The template is a complete RayJob manifest (k8s/base/inference/template/rayjob-infer.yaml, mounted from
a ConfigMap into the CronJob's pod). Each call names the RayJob <template name>-<UTC timestamp>, labels it
(app.kubernetes.io/managed-by=jointssl-schedule, jointssl.io/scheduled-at), puts real image references in
place of the template's placeholders and sizes its worker groups, then creates it in the pod's own
namespace with the pod's service account (outside a cluster: the current kubeconfig context).

Examples:
  jointssl schedule --template k8s/base/inference/template/rayjob-infer.yaml --dry-run
  jointssl schedule --template /etc/jointssl/rayjob/rayjob-infer.yaml \\
      --image jointssl=registry.example.com/jointssl:0.1.0-cpu --replicas cpu=8 --wait

Exit codes: 0 created (with --wait: and the job succeeded), 1 the API refused it or the job failed,
2 a bad template or argument.
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

HELP = "Create a RayJob from a template on Kubernetes (the nightly inference CronJob's command)"

T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", required=True, metavar="FILE", type=Path,
                        help="RayJob manifest to instantiate (k8s/base/inference/template/rayjob-infer.yaml)")
    parser.add_argument("--namespace", metavar="NS",
                        help="where to create it (default: the pod's namespace; outside a cluster, the kubeconfig's)")
    parser.add_argument("--name", metavar="NAME",
                        help="the RayJob's name (default: <template name>-<UTC YYYYMMDD-HHMMSS>)")
    parser.add_argument("--image", action="append", default=[], metavar="NAME=REF", type=_pair(str),
                        help="replace image NAME of the template by REF, e.g. jointssl=registry/jointssl:0.1.0-cpu "
                        "(repeatable)")
    parser.add_argument("--replicas", action="append", default=[], metavar="GROUP=N", type=_pair(_count),
                        help="run worker group GROUP with exactly N pods, e.g. cpu=8 (repeatable)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the RayJob instead of creating it (needs no cluster)")
    parser.add_argument("--output", choices=("yaml", "json"), default="yaml", help="format of --dry-run")
    parser.add_argument("--wait", action="store_true",
                        help="follow the RayJob until it finishes; exit 1 unless it succeeded")
    parser.add_argument("--timeout", type=float, default=86400.0, metavar="SECONDS",
                        help="with --wait: give up waiting after this long (the RayJob keeps its own deadline)")
    parser.add_argument("--poll", type=float, default=30.0, metavar="SECONDS",
                        help="with --wait: seconds between status checks")


def run(args: argparse.Namespace) -> int:
    from jointssl.errors import JointsslError
    from jointssl.ops import rayjob

    now = datetime.datetime.now(datetime.timezone.utc)
    template = rayjob.load_template(args.template)
    name = args.name or rayjob.run_name(template["metadata"]["name"], now)
    namespace = args.namespace or rayjob.namespace_in_cluster()
    job = rayjob.build_rayjob(template, name=name, now=now, namespace=namespace,
                              images=dict(args.image), replicas=dict(args.replicas))
    if args.dry_run:
        print(rayjob.to_text(job, args.output), end="")
        return 0

    api, default_namespace = rayjob.connect()
    namespace = job["metadata"].setdefault("namespace", default_namespace)
    rayjob.create(api, job)
    print(f"created RayJob {namespace}/{name}", flush=True)
    if not args.wait:
        return 0
    result = rayjob.wait(api, namespace, name, timeout_s=args.timeout, poll_s=args.poll)
    if not result.succeeded:
        raise JointsslError(f"RayJob {namespace}/{name} did not succeed: {result.describe()}",
                            hint=f"its driver's log: kubectl -n {namespace} logs job/{name}")
    print(f"RayJob {namespace}/{name} succeeded", flush=True)
    return 0


def _pair(value_type: Callable[[str], T]) -> Callable[[str], tuple[str, T]]:
    """An argparse type for ``KEY=VALUE`` that parses VALUE with ``value_type`` (errors exit 2)."""

    def parse(text: str) -> tuple[str, T]:
        key, sep, value = text.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
        return key, value_type(value)

    return parse


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of pods") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} pods: a worker group needs at least one")
    return value
