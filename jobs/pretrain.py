r"""Ray job: pre-train the per-modality encoders on the streamed chips (Ray Train DDP), track in MLflow.

    # this machine (a local Ray, CPU workers over gloo)
    python jobs/pretrain.py --config configs/demo.yaml
    # a cluster: one GPU per worker (NCCL, bf16), workers spread over its nodes
    ray job submit --address $RAY_ADDRESS --working-dir . --runtime-env infra/ray/runtime-env.yaml \
        -- python jobs/pretrain.py --config configs/demo.yaml --pretrain.use_gpu true --pretrain.num_workers 8

Progress lines (step, loss, samples/s, ETA, per-epoch probe) appear in the job's log. Re-submitting with
the same run.name resumes from the last checkpoint and continues the MLflow run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from jointssl.cli import run_guarded
from jointssl.commands import add_config_arguments, load_args_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobs/pretrain.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    args, args.overrides = parser.parse_known_args(argv)
    return run_guarded("jobs/pretrain.py", lambda: run(args))


def run(args: argparse.Namespace) -> int:
    from jointssl.compute import ray_session
    from jointssl.train.trainer import pretrain

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # 1. configuration (validated; exits 2 on a bad key)
    config = load_args_config(args)
    # 2. on this Ray cluster: stream chips, train with DDP, checkpoint, track; 3. register the encoder
    with ray_session(config.ray):
        summary = pretrain(config)
    # 4. what was trained and where it is
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
