"""Predictor batches are whole: blocks of uneven size (as the planners and chip loaders emit them)
reach a ``map_batches`` actor pool as batches of exactly ``batch_size`` rows, except one remainder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jointssl.infer.run import _whole_batches
from tests.conftest import require_ray

pytestmark = [pytest.mark.services, pytest.mark.slow]

BLOCKS = [5, 11, 3, 7, 13, 2]  # 41 rows


@pytest.fixture(scope="module")
def local_ray():
    require_ray()
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


class BatchSize:
    """An actor that says how many rows each of its batches held."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"size": np.array([len(batch["id"])])}


def batch_sizes(whole: bool) -> list[int]:
    import ray

    ds = ray.data.from_pandas([pd.DataFrame({"id": np.arange(n)}) for n in BLOCKS])
    if whole:
        ds = _whole_batches(ds, 8)
    ds = ds.map_batches(BatchSize, batch_size=8, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=1))
    return sorted(int(s) for s in ds.to_pandas()["size"])


def test_predictor_batches_are_whole(local_ray):
    assert batch_sizes(whole=True) == [1, 8, 8, 8, 8, 8]


def test_uneven_blocks_make_partial_batches_without_it(local_ray):
    # What the test above guards against: Ray Data's default bundling gives a task its blocks' rows and
    # the task's last batch is their remainder, so uneven blocks make several partial batches.
    sizes = batch_sizes(whole=False)
    assert sum(sizes) == sum(BLOCKS) and sum(s < 8 for s in sizes) > 1
