"""The STAC API failing every request while the plan actors open it: 'jointssl infer' stops with one clear
error naming the API and the attempts (and saying how to resume), not Ray's ActorDiedError."""

from __future__ import annotations

import pytest

from jointssl.bench.chaos_proxy import StacFaultProxy
from jointssl.errors import JointsslError
from jointssl.stac.embedded import stac_api
from tests.conftest import require_ray
from tests.infer.conftest import US

pytestmark = pytest.mark.services


def test_a_stac_api_down_at_planner_start_is_one_clear_error(infer_world, tmp_path):
    require_ray()
    import ray

    from jointssl.config import load_job_config
    from jointssl.infer.run import run_inference

    with stac_api(None, str(infer_world.root / "world")) as upstream, StacFaultProxy(upstream) as proxy:
        proxy.faults = [("status", 503)] * 1000  # every request, for the whole test
        config = load_job_config("configs/test.yaml", infer_world.args(
            "--infer.out", str(tmp_path), "--infer.bbox", str(US), "--stac.url", proxy.url,
            "--stac.max_retries", "1", "--stac.timeout_s", "2", "--ray.num_cpus", "2")[2:])
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            with pytest.raises(JointsslError) as raised:
                run_inference(config)
        finally:
            ray.shutdown()
    text = str(raised.value)
    assert f"STAC API at {proxy.url}" in text and "2 attempts" in text, text
    assert "nothing committed is lost" in text.lower() and "re-run the same command" in text, text
    print(f"{len(proxy.requests)} requests; {text}")
    assert isinstance(raised.value.__cause__, ray.exceptions.RayError)
    assert all(what == "status 503" for _, _, what in proxy.requests) and len(proxy.requests) >= 2
