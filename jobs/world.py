"""Ray job: generate the synthetic world into object storage (and load it into pgstac when
JOINTSSL_PGSTAC_DSN is set).

    ray job submit --address $RAY_ADDRESS --working-dir . -- python jobs/world.py --config configs/demo.yaml
"""

from __future__ import annotations

import sys

from jointssl.cli import main as jointssl


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # 1. generate, publish and (with JOINTSSL_PGSTAC_DSN) load the world: the CLI's world command
    return jointssl(["world", *args])


if __name__ == "__main__":
    sys.exit(main())
