"""One module per ``jointssl`` command: ``HELP``, ``add_arguments(parser)``, ``run(args) -> int``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jointssl.config.schema import JobConfig


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` plus free ``--section.key VALUE`` overrides, for job commands."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML job config (see configs/); omitted: built-in defaults. "
        "Any key can be overridden as --section.key VALUE, e.g. --run.seed 3 --storage.root s3://bucket/x",
    )
    parser.set_defaults(accepts_overrides=True)


def load_args_config(args: argparse.Namespace) -> JobConfig:
    """The validated :class:`~jointssl.config.JobConfig` for a job command's ``--config`` and overrides."""
    from jointssl.config import load_job_config

    return load_job_config(args.config, args.overrides)
