"""Start, check and stop the local platform of real services (SeaweedFS, STAC API, MLflow, Ray).

Not available yet: this stage arrives with issue #2 (the local platform of real services). The command exists so the
pipeline's shape is visible; running it says so and exits 1 instead of pretending to work.
"""

from __future__ import annotations

import argparse

from jointssl.commands import add_config_arguments, load_args_config
from jointssl.errors import JointsslError

HELP = "Start, check and stop the local platform of real services (SeaweedFS, STAC API, MLflow, Ray) (not available yet: issue #2)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    load_args_config(args)  # a bad config is still reported as such (exit 2)
    raise JointsslError(
        "'jointssl platform' is not available in this version: it arrives with issue #2 (the local platform of real services)",
        hint="run 'jointssl demo' for the stages that exist today",
    )
