"""Ray job: classify methane sources over an area and write GeoParquet partitions, resumably.

    ray job submit --address $RAY_ADDRESS --working-dir . -- python jobs/infer.py --config configs/demo.yaml
    python jobs/infer.py --config configs/k8s-infer.yaml --incremental     # the scheduled (CronJob) form

Re-submitting the same command after an interruption writes only the missing partitions; with
--incremental only tiles with imagery newer than the area's watermark are predicted, then it advances.
The job is the CLI's ``jointssl infer``.
"""

from __future__ import annotations

import sys

from jointssl.cli import main as jointssl


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # 1. plan -> chips -> predict -> commit partitions on this Ray cluster; 2. summary, map, MLflow, watermark
    return jointssl(["infer", *args])


if __name__ == "__main__":
    sys.exit(main())
