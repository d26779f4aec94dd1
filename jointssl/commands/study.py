"""Run the paper's study: every objective x every sensor subset x every seed, pre-trained and evaluated, in one table.

Reads the ``study`` section (objectives, modalities, seeds, concurrency) of the config; needs the world's
index (``jointssl world`` and ``jointssl index`` first). Each trial is ``jointssl pretrain`` then
``jointssl evaluate`` with the trial's overrides, in its own process on this Ray cluster; re-running the
command skips finished trials and resumes unfinished ones from their checkpoints. Writes results.md /
results.json / plot.png to <storage.root>/study/<name> and to the study's parent MLflow run.
"""

from __future__ import annotations

import argparse
import json
import logging

from jointssl.commands import add_config_arguments, load_args_config

HELP = "Pre-train and evaluate every objective x sensor subset x seed; one table with paired intervals"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from jointssl.compute import ray_session
    from jointssl.study.run import study

    config = load_args_config(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with ray_session(config.ray):
        summary = study(config, args.config, list(args.overrides))
    print(json.dumps(summary, indent=2, default=str))
    return 1 if summary["failed"] else 0
