"""Actor pools fit the cluster: one whole CPU stays free for Ray Data's own tasks; GPUs when present."""

from __future__ import annotations

import pytest

from jointssl.config import load_job_config
from jointssl.errors import JointsslError
from jointssl.infer.resources import actor_plan


def test_two_cpus_leave_one_free_and_predict_on_cpu():
    plan = actor_plan(load_job_config(None, []), cpus=2, gpus=0)
    assert (plan.planners, plan.loaders, plan.predictors, plan.device, plan.torch_threads) == (1, 1, 1, "cpu", 1)
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


def test_the_stream_budget_holds_predictor_batches_and_grows_with_the_predictors():
    from jointssl.infer.resources import MIN_STREAM_MIB, stream_budget_mib
    from jointssl.sensors import load_preset

    world = list(load_preset("world").values())  # naip 4 x 64^2, s2 12 x 32^2, s1 2 x 32^2 float32: 120 KiB a tile
    config = load_job_config(None, [])
    assert stream_budget_mib(config, world, predictors=1) == MIN_STREAM_MIB  # 16 x 64 tiles = 120 MiB < 256
    assert stream_budget_mib(config, world, predictors=8) == 16 * 8 * 64 * 120 // 1024  # 960 MiB
    bigger = load_job_config(None, ["--infer.batch_size", "256"])
    assert stream_budget_mib(bigger, world, predictors=2) == 16 * 2 * 256 * 120 // 1024
    assert stream_budget_mib(load_job_config(None, ["--infer.object_store_mib", "64"]), world, 8) == 64
