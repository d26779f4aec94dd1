r"""Ray job: pre-train the per-modality encoders on the streamed chips (Ray Train DDP), track in MLflow.

    # this machine (a local Ray, CPU workers over gloo)
    python jobs/pretrain.py --config configs/demo.yaml
    # a cluster: one GPU per worker (NCCL, bf16), workers spread over its nodes
    ray job submit --address $RAY_ADDRESS --working-dir . --runtime-env infra/ray/runtime-env.yaml \
        -- python jobs/pretrain.py --config configs/demo.yaml --pretrain.use_gpu true --pretrain.num_workers 8

Progress lines (step, loss, samples/s, ETA, per-epoch probe) appear in the job's log. Re-submitting with
the same run.name resumes from the last checkpoint and continues the MLflow run. The job is the CLI's
``jointssl pretrain``.
"""

from __future__ import annotations

import sys

from jointssl.cli import main as jointssl


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # 1. stream chips, train with DDP, checkpoint, track; 2. register the encoder: the CLI's pretrain command
    return jointssl(["pretrain", *args])


if __name__ == "__main__":
    sys.exit(main())
