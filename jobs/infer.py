"""Ray job: classify methane sources over an area and write GeoParquet partitions, resumably.

    ray job submit --address $RAY_ADDRESS --working-dir . -- python jobs/infer.py --config configs/demo.yaml
    python jobs/infer.py --config configs/k8s-infer.yaml --incremental     # the scheduled (CronJob) form

Re-submitting the same command after an interruption writes only the missing partitions; with
--incremental only tiles with imagery newer than the area's watermark are predicted, then it advances.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from jointssl.cli import run_guarded
from jointssl.commands import add_config_arguments, load_args_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobs/infer.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--incremental", action="store_true",
                        help="only tiles with imagery newer than the area's watermark; then advance it")
    args, args.overrides = parser.parse_known_args(argv)
    return run_guarded("jobs/infer.py", lambda: run(args))


def run(args: argparse.Namespace) -> int:
    from jointssl.infer.run import run_inference

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # 1. configuration (validated; exits 2 on a bad key); --incremental is infer.incremental
    if args.incremental:
        args.overrides = [*args.overrides, "--infer.incremental", "true"]
    config = load_args_config(args)
    # 2. plan -> chips -> predict -> commit partitions on this Ray cluster; 3. summary, map, MLflow, watermark
    summary = run_inference(config)
    # 4. what was written and where
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
