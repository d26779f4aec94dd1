"""The driver's checks before a run starts (no Ray)."""

from __future__ import annotations

import pytest

from jointssl.config import JobConfig
from jointssl.config.load import from_dict
from jointssl.errors import JointsslError
from jointssl.train.trainer import check_resumable


def test_a_mid_epoch_checkpoint_resumes_only_with_its_worker_count():
    config = from_dict(JobConfig, {"run": {"name": "r"}, "pretrain": {"num_workers": 2}})
    check_resumable(config, None)  # a new run
    check_resumable(config, {"step_in_epoch": 3, "world": 2})
    check_resumable(config, {"step_in_epoch": 0, "world": 4})  # at an epoch boundary any count continues
    with pytest.raises(JointsslError, match=r"(?s)stopped mid-epoch with 4 workers.*--pretrain.num_workers 4"):
        check_resumable(config, {"step_in_epoch": 3, "world": 4})
