"""The seeded global shuffle: every rank's sites per epoch, and where a resumed epoch continues."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from jointssl.train.sampler import EpochPlan


def test_each_epoch_is_a_seeded_permutation_split_across_ranks():
    plan = EpochPlan(seed=3, epoch=0, sites=50, world=2, batch_size=4)
    assert plan.steps == 6
    ranks = [plan.rows(r) for r in range(2)]
    assert all(len(r) == plan.steps * 4 for r in ranks)
    together = np.concatenate(ranks)
    assert len(set(together.tolist())) == len(together)  # no site twice in an epoch
    assert sorted(together.tolist()) == sorted(plan.trained().tolist())
    leftover = np.concatenate([plan.leftover(r) for r in range(2)])
    assert sorted([*together.tolist(), *leftover.tolist()]) == list(range(50))
    # step t's global batch is one contiguous slice of the permutation
    step = 2
    batch = {*ranks[0][step * 4:(step + 1) * 4].tolist(), *ranks[1][step * 4:(step + 1) * 4].tolist()}
    assert batch == set(plan.trained()[step * 8:(step + 1) * 8].tolist())
    # same seed and epoch: the same order; another epoch or seed: another one
    assert np.array_equal(plan.permutation(), EpochPlan(3, 0, 50, 2, 4).permutation())
    assert not np.array_equal(plan.permutation(), EpochPlan(3, 1, 50, 2, 4).permutation())
    assert not np.array_equal(plan.permutation(), EpochPlan(4, 0, 50, 2, 4).permutation())


def test_batches_do_not_follow_the_order_of_the_sites_file():
    # 64 sites sorted by class (4 classes of 16): an unshuffled stream gives single-class batches
    classes = np.repeat(np.arange(4), 16)
    plan = EpochPlan(seed=0, epoch=0, sites=64, world=1, batch_size=16)
    rows = plan.rows(0)
    mixed = [len(set(classes[rows[i:i + 16]].tolist())) for i in range(0, len(rows), 16)]
    assert min(mixed) >= 3, mixed


@pytest.mark.parametrize("world", [1, 2, 3])
def test_a_resumed_epoch_trains_each_remaining_site_once(world):
    plan = EpochPlan(seed=1, epoch=2, sites=41, world=world, batch_size=3)
    done_steps = plan.steps // 2
    before = [plan.rows(r)[: done_steps * 3] for r in range(world)]
    after = [plan.rows(r, consumed=done_steps * plan.global_batch) for r in range(world)]
    trained = Counter(np.concatenate(before + after).tolist())
    assert trained == Counter(plan.trained().tolist())
    assert set(trained.values()) == {1}


def test_bad_positions_are_refused():
    plan = EpochPlan(seed=0, epoch=0, sites=20, world=2, batch_size=2)
    with pytest.raises(ValueError, match="whole number of global batches"):
        plan.rows(0, consumed=3)
    with pytest.raises(ValueError, match="rank 2"):
        plan.rows(2)
