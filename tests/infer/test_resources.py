"""Actor pools fit the cluster: one whole CPU stays free for Ray Data's own tasks; GPUs when present."""

from __future__ import annotations

import pytest

from jointssl.config import load_job_config
from jointssl.errors import JointsslError
from jointssl.infer.resources import actor_plan


def test_two_cpus_leave_one_free_and_predict_on_cpu():
    plan = actor_plan(load_job_config(None, []), cpus=2, gpus=0)
    assert (plan.planners, plan.loaders, plan.predictors, plan.device, plan.torch_threads) == (1, 2, 1, "cpu", 1)
    assert plan.reserved_cpus <= 1.0


def test_gpus_get_one_predictor_each_and_bigger_machines_more_loaders():
    plan = actor_plan(load_job_config(None, []), cpus=16, gpus=2)
    assert (plan.predictors, plan.predictor_gpus, plan.device) == (2, 1.0, "cuda") and plan.loaders >= 4
    half = actor_plan(load_job_config(None, ["--infer.gpus_per_actor", "0.5"]), cpus=16, gpus=1)
    assert half.predictors == 2 and half.predictor_gpus == 0.5


def test_impossible_requests_say_what_to_change():
    with pytest.raises(JointsslError, match="no GPU"):
        actor_plan(load_job_config(None, ["--infer.use_gpu", "true"]), cpus=2, gpus=0)
    with pytest.raises(JointsslError, match="one free CPU") as info:
        actor_plan(load_job_config(None, ["--infer.concurrency", "4"]), cpus=2, gpus=0)
    assert "infer.concurrency" in info.value.hint
