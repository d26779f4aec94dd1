"""``jointssl <command>``: one entry point for every stage of the pipeline.

Each command lives in ``jointssl/commands/<name>.py`` with ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. Command modules import only the standard library and argparse at module
level, so ``jointssl --help`` is instant; the heavy libraries load when a command runs.

Every job command takes ``--config FILE`` and any number of ``--section.key VALUE`` overrides.
Exit codes: 0 success, 1 a failure the message explains, 2 invalid input (config, arguments).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from jointssl import __version__
from jointssl.config.load import ConfigError
from jointssl.errors import JointsslError

COMMANDS = ("platform", "world", "index", "pretrain", "evaluate", "study", "infer", "demo", "bench", "schedule")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jointssl",
        description="Joint multi-modal self-supervised pre-training for remote sensing, "
        "and methane source classification at scale.",
        epilog="Run 'jointssl COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"jointssl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"jointssl.commands.{name}")
        command = sub.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    return run_guarded(f"jointssl {args.command}", lambda: args._module.run(args))


def run_guarded(name: str, fn: Callable[[], int | None]) -> int:
    """Run a command or job body, turning the errors users can act on into one message and an exit code."""
    try:
        return int(fn() or 0)
    except ConfigError as err:
        print(f"{name}: invalid configuration: {err}", file=sys.stderr)
        return 2
    except JointsslError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
