"""Pre-train per-modality encoders with a joint-embedding objective.

Not available yet: this stage arrives with issue #5 (joint multi-modal self-supervised pre-training on Ray Train). The command exists so the
pipeline's shape is visible; running it says so and exits 1 instead of pretending to work.
"""

from __future__ import annotations

import argparse

from jointssl.commands import add_config_arguments, load_args_config
from jointssl.errors import JointsslError

HELP = "Pre-train per-modality encoders with a joint-embedding objective (not available yet: issue #5)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    load_args_config(args)  # a bad config is still reported as such (exit 2)
    raise JointsslError(
        "'jointssl pretrain' is not available in this version: it arrives with issue #5 (joint multi-modal self-supervised pre-training on Ray Train)",
        hint="run 'jointssl demo' for the stages that exist today",
    )
