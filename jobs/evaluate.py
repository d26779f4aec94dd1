"""Ray job: evaluate encoders on methane source classification, register the best classifier.

    ray job submit --address $RAY_ADDRESS --working-dir . -- python jobs/evaluate.py --config configs/demo.yaml

Evaluation trains small heads on a labelled set held in memory, so it runs in the job's driver
process; it reads storage, the STAC index and MLflow by URL like every job. The job is the CLI's
``jointssl evaluate``.
"""

from __future__ import annotations

import sys

from jointssl.cli import main as jointssl


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # 1. probes, fine-tuning and baselines on the labelled sites; 2. table, plots, MLflow, registry
    return jointssl(["evaluate", *args])


if __name__ == "__main__":
    sys.exit(main())
