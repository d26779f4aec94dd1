"""Where inference actors run on a cluster of two nodes (two raylets on this machine): planners that
talk to a STAC API on this node's loopback stay on this node; other stages go where Ray puts them."""

from __future__ import annotations

import numpy as np
import pytest

from jointssl.infer.run import _near_loopback
from tests.conftest import require_ray

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_nodes():
    """A head with 2 CPUs (the driver's node) and a second node with 3 CPUs."""
    require_ray()
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=3)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        cluster.wait_for_nodes()
        yield ray.get_runtime_context().get_node_id()
    finally:
        ray.shutdown()
        cluster.shutdown()


class NodeOf:
    """An actor that says which node each row ran on."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ray

        return {"node": np.array([ray.get_runtime_context().get_node_id()] * len(batch["id"]))}


def nodes_used(actors: int, **placement) -> set[str]:
    import ray

    ds = ray.data.range(32, override_num_blocks=16).map_batches(
        NodeOf, batch_size=2, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=actors), **placement)
    return {str(n) for n in ds.to_pandas()["node"]}


def test_planners_of_a_loopback_stac_api_run_on_the_drivers_node(two_nodes):
    assert nodes_used(2, **_near_loopback("http://127.0.0.1:8123/")) == {two_nodes}


def test_other_stages_use_the_whole_cluster(two_nodes):
    # The same pool without the selector: Ray Data spreads actors over the nodes (its default
    # scheduling strategy is SPREAD), so the test above fails if the selector is dropped or ignored.
    assert _near_loopback("https://planetarycomputer.microsoft.com/api/stac/v1") == {}
    used = nodes_used(2)
    assert len(used) == 2 and two_nodes in used
