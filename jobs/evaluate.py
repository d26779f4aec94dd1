"""Ray job: evaluate encoders on methane source classification, register the best classifier.

    ray job submit --address $RAY_ADDRESS --working-dir . -- python jobs/evaluate.py --config configs/demo.yaml

Evaluation trains small heads on a labelled set held in memory, so it runs in the job's driver
process; it reads storage, the STAC index and MLflow by URL like every job.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from jointssl.cli import run_guarded
from jointssl.commands import add_config_arguments, load_args_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobs/evaluate.py", description=__doc__)
    add_config_arguments(parser)
    args, args.overrides = parser.parse_known_args(argv)
    return run_guarded("jobs/evaluate.py", lambda: run(args))


def run(args: argparse.Namespace) -> int:
    from jointssl.evaluate.run import evaluate

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # 1. configuration (validated; exits 2 on a bad key)
    config = load_args_config(args)
    # 2. probes, fine-tuning and baselines on the labelled sites; 3. table, plots, MLflow, registry
    summary = evaluate(config)
    # 4. the results table and where everything went
    print(summary.pop("table"))
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
