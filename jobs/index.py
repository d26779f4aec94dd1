"""Ray job: co-locate sites with one STAC item per sensor, then stream their chips once through
Ray Data and report what was read and skipped.

    ray job submit --address $RAY_ADDRESS --working-dir . -- python jobs/index.py --config configs/demo.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from jointssl.cli import run_guarded
from jointssl.commands import add_config_arguments, load_args_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobs/index.py", description=__doc__)
    add_config_arguments(parser)
    args, args.overrides = parser.parse_known_args(argv)
    return run_guarded("jobs/index.py", lambda: run(args))


def run(args: argparse.Namespace) -> int:
    from jointssl.compute import ray_session
    from jointssl.data.index_job import run_index
    from jointssl.data.pipeline import scan_chips

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # 1. configuration (validated; exits 2 on a bad key)
    config = load_args_config(args)
    # 2. co-location index through the STAC API
    index = run_index(config)
    # 3. one streaming pass over the chips on this Ray cluster
    with ray_session(config.ray):
        chips = scan_chips(config)
    print(json.dumps({"index": index, "chips": chips}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
