"""Ray job: co-locate sites with one STAC item per sensor, then stream their chips once through
Ray Data and report what was read and skipped (the CLI's ``jointssl index --scan-chips``).

    ray job submit --address $RAY_ADDRESS --working-dir . -- python jobs/index.py --config configs/demo.yaml
"""

from __future__ import annotations

import sys

from jointssl.cli import main as jointssl


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # 1. co-location index through the STAC API; 2. one streaming pass over the chips on this Ray cluster
    return jointssl(["index", "--scan-chips", *args])


if __name__ == "__main__":
    sys.exit(main())
