"""Ray job: the study (every objective x sensor subset x seed, pre-trained and evaluated, one table).

    ray job submit --address $RAY_ADDRESS --working-dir . -- python jobs/study.py --config configs/science.yaml
"""

from __future__ import annotations

import sys

from jointssl.cli import main as jointssl


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # 1. run (or continue) the study: the CLI's study command
    return jointssl(["study", *args])


if __name__ == "__main__":
    sys.exit(main())
