"""Pre-train per-modality encoders with a joint-embedding objective on Ray Train (DDP), tracked in MLflow.

Reads the co-location index of ``jointssl index``, streams the chips of the unlabelled and train
sites to ``pretrain.num_workers`` workers, checkpoints to <storage.root>/checkpoints/<run.name>
(re-running with the same run name resumes), logs to MLflow and registers the encoder.
"""

from __future__ import annotations

import argparse
import json
import logging

from jointssl.commands import add_config_arguments, load_args_config

HELP = "Pre-train per-modality encoders with a joint-embedding objective (Ray Train, MLflow)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from jointssl.compute import ray_session
    from jointssl.train.trainer import pretrain

    config = load_args_config(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with ray_session(config.ray):
        summary = pretrain(config)
    print(json.dumps(summary, indent=2, default=str))
    return 0
