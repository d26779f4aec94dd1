"""Ray clusters of two nodes on this machine (``ray.cluster_utils``: two raylets, in the loopback-only
namespace), for the node-loss tests: the cluster, and the PID of a node's raylet to SIGKILL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import require_ray

long_fault_test = pytest.mark.skipif(
    not os.environ.get("JOINTSSL_LONG_FAULTS"),
    reason="a long fault test (1-3 min on 2 cores, over the suite's time budget): scripts/reliability.sh runs it "
           "(JOINTSSL_LONG_FAULTS=1)")
"""Node loss with recovery: Ray needs ~15 s to declare a node dead, then restarts actors or the worker group."""


@contextmanager
def two_nodes(cpus: int) -> Iterator[tuple[Any, Any]]:
    """(cluster, its second node): a head (the driver's node) and a second node of ``cpus`` CPUs each, with
    the driver connected; shut down on exit."""
    require_ray()
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False})
    second = cluster.add_node(num_cpus=cpus)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        cluster.wait_for_nodes()
        yield cluster, second
    finally:
        ray.shutdown()
        cluster.shutdown()


def raylet_pid(node: Any) -> int:
    """PID of a ``ray.cluster_utils`` node's raylet (:func:`jointssl.bench.chaos_train.raylet_pid`)."""
    from jointssl.bench.chaos_train import raylet_pid as pid_of

    return pid_of(node)
